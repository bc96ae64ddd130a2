"""areacam.callbacks: explanations of fixed samples during training leave the training bit-identical,
and the Lightning callback writes TensorBoard events that read back."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import areacam as ac
from areacam.callbacks import explain_epoch


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(16, 1, 8, 8, generator=generator), torch.randint(0, 2, (16,), generator=generator)


def _greedy(out: torch.Tensor) -> torch.Tensor:
    """A score that draws from every global generator (as dropout, augmentations and samplers do)."""
    noise = torch.rand(()) + float(np.random.rand()) + random.random()
    return out[:, 0] + 0 * noise


def _train(watch: bool, epochs: int = 3) -> tuple[nn.Module, ac.callbacks.EpochMaps | None]:
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    model, (x, y) = _net(), _data()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(16)
        for start in range(0, 16, 8):
            batch = order[start : start + 8]
            flip = random.random() < 0.5 and np.random.rand() < 2  # python and numpy draws in the loop
            inputs = x[batch].flip(-1) if flip else x[batch]
            loss = nn.functional.cross_entropy(model(inputs), y[batch])
            optimiser.zero_grad(set_to_none=False)  # .grad stays allocated between steps
            loss.backward()
            optimiser.step()
            if watch:  # mid-epoch too: with .grad written and the model in train mode
                targets = [ac.Score(_greedy), ac.Class(1)]
                history = explain_epoch(x[:3], targets, ac.GradCAM(model, "4"), epoch * 2 + start // 8, history)
    return model, history


def test_explaining_every_epoch_leaves_the_training_bit_identical():
    plain, _ = _train(watch=False)
    watched, history = _train(watch=True)
    for (name, a), b in zip(plain.state_dict().items(), watched.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after training with explanations"
    assert history is not None and len(history) == 6 and history.epochs == list(range(6))
    assert history.maps[0].shape == (3, 2, 8, 8) and history.scores[0].shape == (3, 2)
    assert not history.maps[0].requires_grad
    assert not torch.equal(history.maps[0], history.maps[-1])  # the training changed the maps
    figure = history.plot(target=1)
    assert len(figure.axes) == 3 * 7  # 3 samples x (input + 6 epochs)


def test_a_target_list_whose_length_changes_raises():
    model, (x, _) = _net(), _data()
    targets = [ac.Class(0)]
    history = explain_epoch(x[:2], targets, ac.GradCAM(model, "4"), 0)
    targets.append(ac.Class(1))
    with pytest.raises(ValueError, match=r"1 target\(s\) at epoch 0, 2 now"):
        explain_epoch(x[:2], targets, ac.GradCAM(model, "4"), 1, history)
    with pytest.raises(ValueError, match=r"samples changed shape: \(2, 1, 8, 8\) at epoch 0, \(3, 1, 8, 8\)"):
        explain_epoch(x[:3], targets[:1], ac.GradCAM(model, "4"), 1, history)
    with pytest.raises(TypeError, match="areacam explainer"):
        explain_epoch(x[:2], targets, model, 1)  # type: ignore[arg-type]  # the error under test
    assert len(history) == 1


def test_across_epochs_figure_checks_its_arrays():
    maps = [torch.rand(2, 1, 8, 8) for _ in range(3)]
    assert len(ac.across_epochs_figure(maps, epochs=[0, 5, 10]).axes) == 2 * 3
    with pytest.raises(ValueError, match="got 2 epochs for 3 maps"):
        ac.across_epochs_figure(maps, epochs=[0, 1])
    with pytest.raises(IndexError, match="target 1 is out of range"):
        ac.across_epochs_figure(maps, target=1)
    with pytest.raises(ValueError, match="got 3 images for maps of 2 samples"):
        ac.across_epochs_figure(maps, torch.rand(3, 1, 8, 8))


def test_the_lightning_callback_logs_two_epochs_to_tensorboard(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    x, y = _data()

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _net()

        def forward(self, inputs):
            return self.net(inputs)

        def training_step(self, batch, index):
            inputs, labels = batch
            return nn.functional.cross_entropy(self.net(inputs), labels)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(watch: bool, name: str) -> tuple[nn.Module, list]:
        pl.seed_everything(0, verbose=False)
        module = Module()
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True)
        targets = [ac.Class(0), ac.Class(1)]
        callbacks = [ac.callbacks.ExplainEveryEpoch(x[:2], targets, ac.GradCAM(module, "net.4"))] if watch else []
        trainer = pl.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=pl.loggers.TensorBoardLogger(str(tmp_path), name=name),
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=1,
            callbacks=callbacks,
        )
        trainer.fit(module, loader)
        return module, callbacks

    watched, (callback,) = fit(True, "watched")
    plain, _ = fit(False, "plain")
    for a, b in zip(plain.state_dict().values(), watched.state_dict().values()):
        assert torch.equal(a, b)
    assert callback.history.epochs == [0, 1]

    (events,) = (tmp_path / "watched").rglob("events.out.tfevents.*")
    reader = event_accumulator.EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0})
    reader.Reload()
    assert sorted(reader.Tags()["images"]) == ["explanations/sample_0", "explanations/sample_1"]
    image = reader.Images("explanations/sample_0")
    assert [e.step for e in image] == [0, 1] and (image[0].width, image[0].height) == (3 * 8, 8)
    score = reader.Scalars("explanations/score/sample_1/target_1")
    assert [e.step for e in score] == [0, 1]
    assert score[1].value == pytest.approx(float(callback.history.scores[1][1, 1]), rel=1e-6)
