"""What tests, benchmarks and the demo build on.

synth.py: the synthetic LibriSpeech-style corpus; random_model.py: tiny random checkpoints of every architecture;
fakes.py: a transcriber with no model and in-memory utterances, for the run loop's unit tests.
"""
