"""Hugging Face models: training, perplexity, the shared model helpers, the tiny test model."""
