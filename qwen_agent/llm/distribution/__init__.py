"""Getting model files: the catalogue of embedded models, the verified local store, and the GGUF -> HF conversion."""
