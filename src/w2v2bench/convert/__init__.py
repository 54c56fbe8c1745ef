"""Checkpoints from other toolkits to Hugging Face folders.

fairseq.py: fairseq wav2vec 2.0 CTC checkpoints; safe_pickle.py: the pickle reader it uses, which runs nothing.
"""
