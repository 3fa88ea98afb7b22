"""Local model servers started from project code: a private vLLM (CPU) venv and the `VLLMServer` process."""
