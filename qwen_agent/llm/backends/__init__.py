"""The `ChatModel` backends: servers over HTTP (`openai_compat`) and in-process models (`llamacpp`, `transformers`).

Each backend only turns rendered messages into raw text (and native tool calls); everything about tools is shared in
`qwen_agent.llm.base`. The in-process ones share `local.LocalModel` (one worker thread, loading, token counting).
Import a backend from its module, or by name from `qwen_agent.llm` (loaded on first use).
"""
