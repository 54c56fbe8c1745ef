"""What tests, benchmarks and the demo build on.

synth.py: the synthetic LibriSpeech-style corpus; random_model.py: tiny random checkpoints of every architecture.
"""
