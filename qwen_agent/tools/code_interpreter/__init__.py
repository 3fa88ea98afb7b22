"""Code interpreter: a stateful IPython kernel in a bubblewrap sandbox, exposed to agents as the CodeInterpreter tool.

Layers, bottom up: ``bwrap`` (finding bwrap, the mount plan), ``seccomp`` (the syscall filter), ``hostfs`` (host-side
file access that the sandbox cannot redirect), ``volume`` (the work dir's size limit) -> ``sandbox`` (config, limits,
starting the sandbox without privileged code) -> ``kernel`` (one kernel over jupyter-client) -> ``pool``
(pre-started kernels) -> ``output``/``notebook`` (shaping results) -> ``tool`` (the Tool).
"""

from qwen_agent.tools.code_interpreter.bwrap import check_bwrap, find_bwrap
from qwen_agent.tools.code_interpreter.kernel import Kernel
from qwen_agent.tools.code_interpreter.notebook import NotebookRecorder
from qwen_agent.tools.code_interpreter.pool import KernelPool
from qwen_agent.tools.code_interpreter.result import ErrorInfo, ExecutionResult
from qwen_agent.tools.code_interpreter.sample_data import write_sample_csv
from qwen_agent.tools.code_interpreter.sandbox import SandboxConfig, SandboxLimits
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
