"""One Lambda execution environment: imports the handler once, then serves invocations.

Run as `python -P worker.py <request fd> <reply fd> [memory MB]` by devstack.runtime, with the
function's code directory as the working directory and the function's environment. With a memory
size, the process's address space is capped at it before the handler is imported. Standard library
only, and nothing from devstack is imported, so the handler sees the same sys.path it would see on
Lambda (code directory first, then the layers) and nothing else of the runner.

Protocol: one JSON document per message (multiprocessing.connection's framing over the two pipes).
The runner sends {"event", "request_id", "deadline_ms",
"trace_id"} (and "invoked_function_arn" when it knows it); the worker answers {"ok": true,
"result": ...} or {"ok": false, "error": {...}} in Lambda's error shape. The first message the worker
writes reports the init phase (the cold start); after a failed init it exits. stdout and stderr stay
free for the handler's own logs; after the init and after each invocation the worker writes
OUTPUT_DONE_MARKER and the request id ("init" for the init) on a line of its own, so the runner
knows it has all of that phase's output.
"""

import importlib
import json
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection

OUTPUT_DONE_MARKER = "\x00devstack-output-done "  # devstack.runtime.OUTPUT_DONE_MARKER
INIT_REQUEST_ID = "init"  # the "request id" of the init phase's output


class LambdaContext:
    """The attributes and method of the context object the Python runtime passes to handlers."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str | None = None):
        env = os.environ
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = invoked_function_arn or (
            f"arn:aws:lambda:{env['AWS_REGION']}:{env['DEVSTACK_ACCOUNT_ID']}:function:{self.function_name}"
        )
        self.memory_limit_in_mb = env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.aws_request_id = request_id
        self.log_group_name = env["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)


def _error(exc: BaseException, error_type: str | None = None) -> dict:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


def _load_handler(spec: str):
    module_name, _, function_name = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as exc:
        return None, _error(exc, "Runtime.ImportModuleError") | {
            "errorMessage": f"Unable to import module '{module_name}': {exc}"
        }
    handler = getattr(module, function_name, None)
    if handler is None:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        return None, {"errorMessage": message, "errorType": "Runtime.HandlerNotFound", "stackTrace": []}
    return handler, None


def _limit_memory(megabytes: int) -> None:
    import resource

    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _output_done(request_id: str) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, f"{OUTPUT_DONE_MARKER}{request_id}\n".encode())


def main() -> None:
    requests = Connection(int(sys.argv[1]), writable=False)
    replies = Connection(int(sys.argv[2]), readable=False)
    if len(sys.argv) > 3:
        _limit_memory(int(sys.argv[3]))

    def reply(message: dict) -> None:
        replies.send_bytes(json.dumps(message).encode())

    started = time.perf_counter()
    handler, init_error = _load_handler(os.environ["_HANDLER"])
    _output_done(INIT_REQUEST_ID)
    reply({"init_ms": round((time.perf_counter() - started) * 1000, 1), "error": init_error})
    if init_error is not None:
        return  # like Lambda, the next invocation gets a fresh environment that tries again

    while True:
        try:
            request = json.loads(requests.recv_bytes())
        except EOFError:
            return  # the runner closed the pipe: stop, as the environment is shut down
        context = LambdaContext(
            request["request_id"], request["deadline_ms"], request.get("invoked_function_arn")
        )
        os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]
        try:
            result = handler(request["event"], context)
        except Exception as exc:
            traceback.print_exc()
            reply({"ok": False, "error": _error(exc) | {"requestId": context.aws_request_id}})
            continue
        finally:
            _output_done(context.aws_request_id)
        try:
            reply({"ok": True, "result": result})
        except (TypeError, ValueError) as exc:
            reply({"ok": False, "error": _error(exc, "Runtime.MarshalError")})


if __name__ == "__main__":
    main()
