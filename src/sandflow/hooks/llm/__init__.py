"""LLM inference hooks and their executors (huggingface, vllm, api)."""
