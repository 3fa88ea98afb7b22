"""Code interpreter: a stateful IPython kernel in a bubblewrap sandbox, exposed to agents as the CodeInterpreter tool.

Layers, bottom up: ``sandbox`` (bwrap command line, limits, detection) -> ``kernel`` (one kernel over jupyter-client)
-> ``pool`` (pre-started kernels) -> ``output``/``notebook`` (shaping results) -> ``tool`` (the Tool).
"""

from qwen_agent.tools.code_interpreter.kernel import Kernel
from qwen_agent.tools.code_interpreter.notebook import NotebookRecorder
from qwen_agent.tools.code_interpreter.pool import KernelPool
from qwen_agent.tools.code_interpreter.result import ErrorInfo, ExecutionResult
from qwen_agent.tools.code_interpreter.sample_data import write_sample_csv
from qwen_agent.tools.code_interpreter.sandbox import SandboxConfig, SandboxLimits, check_bwrap, find_bwrap
from qwen_agent.tools.code_interpreter.tool import CodeInterpreter

__all__ = [
    "CodeInterpreter",
    "ErrorInfo",
    "ExecutionResult",
    "Kernel",
    "KernelPool",
    "NotebookRecorder",
    "SandboxConfig",
    "SandboxLimits",
    "check_bwrap",
    "find_bwrap",
    "write_sample_csv",
]
