"""The areacam application: the command line, SPEC parsing, model loading and the demo.

It sits above the library (``areacam`` core): it imports the core, never the other way round.
"""
