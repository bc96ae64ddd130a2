"""Private helpers of areacam (not a public entry point): argument checks, optional imports, progress
bars, atomic file writes, image filters and error messages. Every other folder may import them; they
import nothing of areacam."""
