"""Run inside the bfcl-eval venv (never imported by qwen_agent): score cases with bfcl-eval's own checker.

    python -I reference_driver.py cases.jsonl verdicts.jsonl

Each case is scored as bfcl-eval's ``eval_runner`` does: relevance categories by ``is_empty_output`` on the decoded
calls, the others by ``is_function_calling_format_output`` and then ``ast_checker`` (Python).
"""

import json
import sys

from bfcl_eval.constants.enums import Language
from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

#: A registered model whose function names keep their dots (the checker looks up this setting).
MODEL = "Qwen/Qwen3-0.6B-FC"


def verdict(case):
    category, calls = case["category"], case["calls"]
    if "relevance" in category:
        made = not is_empty_output(calls)
        valid = not made if "irrelevance" in category else made
        return {"valid": valid, "error_type": None if valid else "relevance"}
    if not is_function_calling_format_output(calls):
        return {"valid": False, "error_type": "ast_decoder:decoder_wrong_output_format"}
    result = ast_checker(case["functions"], calls, case["ground_truth"], Language.PYTHON, category, MODEL)
    return {"valid": bool(result["valid"]), "error_type": result.get("error_type")}


def main(src, dst):
    with open(src, encoding="utf-8") as cases, open(dst, "w", encoding="utf-8") as out:
        for line in cases:
            case = json.loads(line)
            try:
                answer = verdict(case)
            except Exception as exc:  # noqa: BLE001 - the checker itself failed on this input
                answer = {"valid": False, "error_type": None, "crash": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
