// The region explorers' shared script (inlined into explorer.html and volume_explorer.html).
// Everything is in volume terms, (D, H, W); an image is the volume of depth D = 1.
var areacamExplorer = (function () {
  function half(bits) {
    var sign = bits & 0x8000 ? -1 : 1, exp = (bits >> 10) & 0x1f, frac = bits & 0x3ff;
    if (exp === 0) return sign * frac * Math.pow(2, -24);
    if (exp === 31) return frac ? NaN : sign * Infinity;
    return sign * (1 + frac / 1024) * Math.pow(2, exp - 15);
  }
  var HALF = new Float64Array(65536);
  for (var i = 0; i < 65536; i++) HALF[i] = half(i);

  // Base64 little-endian float16, each of scales.length equal planes times its scale.
  function decode(text, scales) {
    var bin = atob(text), n = bin.length / 2, out = new Float64Array(n), plane = n / scales.length;
    for (var i = 0; i < n; i++) {
      out[i] = HALF[bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8)] * scales[Math.floor(i / plane)];
    }
    return out;
  }
  function bytes(text) {
    var bin = atob(text), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // Summed-volume tables (C, D + 1, H + 1, W + 1) of the field F (C, CO, D, H, W), output channel o
  // (-1: the sum of all channels); weights() reads any box's sum from its eight corners: O(C).
  function Tables(F, C, CO, shape) {
    this.F = F; this.C = C; this.CO = CO; this.shape = shape; this.cache = {};
  }
  Tables.prototype.of = function (o) {
    if (this.cache[o]) return this.cache[o];
    var F = this.F, C = this.C, CO = this.CO, D = this.shape[0], H = this.shape[1], W = this.shape[2];
    var N = D * H * W, H1 = H + 1, W1 = W + 1, S = (D + 1) * H1 * W1, t = new Float64Array(C * S);
    for (var c = 0; c < C; c++) {
      var b = c * S;
      for (var z = 0; z < D; z++) {
        for (var y = 0; y < H; y++) {
          for (var x = 0; x < W; x++) {
            var p = (z * H + y) * W + x, v = 0;
            if (o < 0) { for (var k = 0; k < CO; k++) v += F[(c * CO + k) * N + p]; }
            else v = F[(c * CO + o) * N + p];
            var q = b + ((z + 1) * H1 + y + 1) * W1 + x + 1;  // t[z+1, y+1, x+1]
            t[q] = v + t[q - 1] + t[q - W1] + t[q - H1 * W1]
                 - t[q - W1 - 1] - t[q - H1 * W1 - 1] - t[q - H1 * W1 - W1] + t[q - H1 * W1 - W1 - 1];
          }
        }
      }
    }
    this.cache[o] = t;
    return t;
  };
  // Channel weights (C) of a 3-D box [z0, y0, x0, z1, y1, x1] of output channel o: the field's sum over it.
  Tables.prototype.weights = function (box, o) {
    var t = this.of(o), H1 = this.shape[1] + 1, W1 = this.shape[2] + 1, S = (this.shape[0] + 1) * H1 * W1;
    var out = new Float64Array(this.C);
    function at(b, z, y, x) { return t[b + (z * H1 + y) * W1 + x]; }
    for (var c = 0; c < this.C; c++) {
      var b = c * S;
      out[c] = at(b, box[3], box[4], box[5]) - at(b, box[0], box[4], box[5]) - at(b, box[3], box[1], box[5])
             - at(b, box[3], box[4], box[2]) + at(b, box[0], box[1], box[5]) + at(b, box[0], box[4], box[2])
             + at(b, box[3], box[1], box[2]) - at(b, box[0], box[1], box[2]);
    }
    return out;
  };

  // Linear resize along each axis as torch's F.interpolate(align_corners=False): bilinear for
  // images, trilinear for volumes (both are separable into one linear pass per axis).
  function source(i, inSize, outSize) {
    var s = (i + 0.5) * (inSize / outSize) - 0.5;
    if (s < 0) s = 0;
    var i0 = Math.floor(s), i1 = i0 + (i0 < inSize - 1 ? 1 : 0);
    return [i0, i1, s - i0];
  }
  function resize(values, inShape, outShape) {
    var shape = inShape.slice();
    for (var axis = shape.length - 1; axis >= 0; axis--) {
      var n = shape[axis], size = outShape[axis];
      if (n === size) continue;
      var outer = 1, inner = 1;
      for (var a = 0; a < axis; a++) outer *= shape[a];
      for (var b = axis + 1; b < shape.length; b++) inner *= shape[b];
      var out = new Float64Array(outer * size * inner);
      for (var i = 0; i < size; i++) {
        var s = source(i, n, size);
        for (var o = 0; o < outer; o++) {
          var to = (o * size + i) * inner, lo = (o * n + s[0]) * inner, hi = (o * n + s[1]) * inner;
          for (var k = 0; k < inner; k++) out[to + k] = (1 - s[2]) * values[lo + k] + s[2] * values[hi + k];
        }
      }
      values = out;
      shape[axis] = size;
    }
    return values;
  }

  // The map as the library computes it: ReLU(sum_c w_c A_c) at the layer (A: (C, *actShape)),
  // resized to inShape, min-max normalised (a constant map is all zeros and flagged degenerate).
  // channel >= 0 keeps one layer channel's term only.
  function camMap(wts, A, actShape, inShape, channel) {
    var n = actShape[0] * actShape[1] * actShape[2], raw = new Float64Array(n);
    for (var c = 0; c < wts.length; c++) {
      if (channel >= 0 && c !== channel) continue;
      var wc = wts[c];
      if (wc === 0) continue;
      for (var p = 0; p < n; p++) raw[p] += wc * A[c * n + p];
    }
    for (var q = 0; q < n; q++) raw[q] = Math.max(raw[q], 0);
    var up = resize(raw, actShape, inShape), lo = Infinity, hi = -Infinity;
    for (var r = 0; r < up.length; r++) { lo = Math.min(lo, up[r]); hi = Math.max(hi, up[r]); }
    var span = hi - lo, degenerate = !(span > 1e-6 * Math.max(Math.abs(hi), Math.abs(lo)));
    var map = new Float64Array(up.length);
    if (!degenerate) for (var m = 0; m < up.length; m++) map[m] = Math.min(Math.max((up[m] - lo) / span, 0), 1);
    return {map: map, degenerate: degenerate, weights: wts};
  }

  function jet(v) {
    var r = Math.min(Math.max(1.5 - Math.abs(4 * v - 3), 0), 1);
    var g = Math.min(Math.max(1.5 - Math.abs(4 * v - 2), 0), 1);
    var b = Math.min(Math.max(1.5 - Math.abs(4 * v - 1), 0), 1);
    return [255 * r, 255 * g, 255 * b];
  }
  function canvas(id, width, height) {
    var element = document.getElementById(id);
    element.width = width; element.height = height;
    return element.getContext('2d');
  }
  function option(select, value, text) {
    var o = document.createElement('option'); o.value = value; o.textContent = text; select.appendChild(o);
  }
  // The output channel and layer channel selectors, as both pages offer them.
  function selectors(classSelect, channelSelect, names, channels) {
    option(classSelect, -1, 'all channels');
    names.forEach(function (name, o) { option(classSelect, o, o + ': ' + name); });
    if (names.length > 1) classSelect.value = '1';
    option(channelSelect, -1, 'all (Grad-CAM)');
    for (var c = 0; c < channels; c++) option(channelSelect, c, 'channel ' + c);
  }
  function largestWeights(wts) {
    var order = Array.prototype.slice.call(wts).map(function (v, c) { return [v, c]; })
      .sort(function (a, b) { return Math.abs(b[0]) - Math.abs(a[0]); }).slice(0, 6);
    return 'largest channel weights: ' +
      order.map(function (e) { return 'c' + e[1] + ' ' + e[0].toExponential(2); }).join(', ');
  }
  // The Python call a box answers (a one-voxel box is an ac.Pixel).
  function describe(box, o) {
    var channel = o < 0 ? '' : ', channel=' + o, d = box.length / 2, single = true;
    for (var i = 0; i < d; i++) single = single && box[d + i] - box[i] === 1;
    if (single) return 'ac.Pixel(' + box.slice(0, d).join(', ') + channel + ')';
    return 'ac.Area(box=(' + box.join(', ') + ')' + channel + ')';
  }

  // Mouse boxes on canvases showing rows x cols pixels: hover gives a one-pixel box until a drag
  // pins a larger one (a click unpins). onBox(view, [top, left, bottom, right]) gets each change.
  function boxInput(views, onBox) {
    var state = {pinned: false, dragging: false, start: null, view: null};
    function pixelAt(e, v) {
      var rect = v.canvas.getBoundingClientRect();
      var y = Math.floor((e.clientY - rect.top) / rect.height * v.rows);
      var x = Math.floor((e.clientX - rect.left) / rect.width * v.cols);
      return [Math.min(Math.max(y, 0), v.rows - 1), Math.min(Math.max(x, 0), v.cols - 1)];
    }
    function span(a, b) {
      return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]) + 1, Math.max(a[1], b[1]) + 1];
    }
    views.forEach(function (v) {
      v.canvas.addEventListener('mousedown', function (e) {
        state.dragging = true; state.view = v; state.start = pixelAt(e, v); state.rect = span(state.start, state.start);
        onBox(v, state.rect);
      });
      v.canvas.addEventListener('mousemove', function (e) {
        var p = pixelAt(e, v);
        if (state.dragging && state.view === v) state.rect = span(state.start, p);
        else if (!state.pinned && !state.dragging) state.rect = span(p, p);
        else return;
        onBox(v, state.rect);
      });
    });
    window.addEventListener('mouseup', function () {
      if (!state.dragging) return;
      state.dragging = false;
      state.pinned = (state.rect[2] - state.rect[0]) * (state.rect[3] - state.rect[1]) > 1;
    });
    return state;
  }
  // A scripted drag of rect on a view (for checks): the same mouse events a person makes.
  function drag(v, rect) {
    function at(y, x) {  // the layout may move between events: read the canvas's place each time
      var r = v.canvas.getBoundingClientRect();
      return {clientX: r.left + (x + 0.5) / v.cols * r.width, clientY: r.top + (y + 0.5) / v.rows * r.height,
              bubbles: true, button: 0};
    }
    v.canvas.dispatchEvent(new MouseEvent('mousedown', at(rect[0], rect[1])));
    v.canvas.dispatchEvent(new MouseEvent('mousemove', at(rect[2] - 1, rect[3] - 1)));
    v.canvas.dispatchEvent(new MouseEvent('mouseup', at(rect[2] - 1, rect[3] - 1)));
  }
  // The fragment's key=value pairs (#drag=...&class=...).
  function params() {
    var out = {};
    location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
      var parts = kv.split('='); if (parts[0]) out[parts[0]] = parts[1];
    });
    return out;
  }
  function rounded(map) {
    return Array.prototype.map.call(map, function (v) { return Math.round(v * 1e6) / 1e6; });
  }
  // The self-check verdict (areacam._util.pages): JSON into the check block, marked done.
  function report(verdict) {
    verdict.errors = window.areacamErrors;
    var out = document.getElementById('__CHECK_ID__');
    out.textContent = JSON.stringify(verdict);
    out.setAttribute('data-done', '1');
  }
  return {decode: decode, bytes: bytes, Tables: Tables, resize: resize, camMap: camMap, jet: jet, canvas: canvas,
          selectors: selectors, largestWeights: largestWeights, describe: describe, boxInput: boxInput, drag: drag,
          params: params, rounded: rounded, report: report};
})();
