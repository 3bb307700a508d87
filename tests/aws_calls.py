"""Which AWS API calls a function's code can make, and on which resource: read from the source.

The code a function can run is its own directory plus the core layer (`guideline_ingest`). From the
handler module, follow imports (their module-level code runs at cold start) and references between
functions; an API route is an entry only when the template routes it to this function. An AWS call
is a method called on a boto3 client (`sqs_client().send_message(...)` -> sqs:SendMessage), or one
of the helpers in AWS_HELPERS. Its resource is traced back to where it comes from: a parameter leads
to every reachable call site, a local variable to its assignment, and in the end to an environment
variable (`os.environ[...]`, `os.environ.get(...)`, or a settings attribute: `webhook_queue_url` is
WEBHOOK_QUEUE_URL). Anything else is reported as untraceable, so the check never passes by guessing.

Seams: logic takes its store and queue as parameters, and the handler or route passes a module
(`sweep(settings, store=jobs, queue=queue)`). A parameter bound to a module, by a call site or a
default, stands for that module: `queue.enqueue_jobs(...)` in the logic is
`guideline_ingest.queue.enqueue_jobs` where the handler passed that module.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

# Calls that reach AWS without a boto3 client method in our code: (service, operation, argument index
# of the resource). The secrets extension calls GetSecretValue with the function's own role.
AWS_HELPERS = {
    "aws_lambda_powertools.utilities.parameters.get_secret": ("secretsmanager", "GetSecretValue", 0),
    "guideline_ingest.secrets.read_secret": ("secretsmanager", "GetSecretValue", 0),
}
# The parameter naming the resource of each client method, per service.
RESOURCE_PARAMETER = {"sqs": "QueueUrl", "secretsmanager": "SecretId", "s3": "Bucket"}
# Client methods that make no request themselves: the request signed with the function's role is made
# later by someone else, and authorized as this operation.
PRESIGNED = {"generate_presigned_post": "PutObject"}
ROUTE_METHODS = {"get", "post", "put", "delete", "patch", "head", "options"}


@dataclass(frozen=True)
class AwsCall:
    service: str
    operation: str  # API operation, e.g. SendMessageBatch
    env_var: str | None  # where the resource comes from; None when untraceable
    where: str  # module:line of the call


@dataclass
class _Function:
    qualname: str
    module: str
    node: ast.AST  # FunctionDef, or Module for module-level code
    params: list[str] = field(default_factory=list)


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


class CodeBase:
    def __init__(self, function_dir: Path, layer_dir: Path):
        self.modules: dict[str, ast.Module] = {}
        for path in sorted(function_dir.rglob("*.py")):
            self.modules[".".join(path.relative_to(function_dir).with_suffix("").parts)] = ast.parse(
                path.read_text(), str(path)
            )
        for path in sorted(layer_dir.rglob("*.py")):
            name = ".".join(path.relative_to(layer_dir).with_suffix("").parts)
            self.modules[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
        self.names: dict[str, dict[str, str]] = {
            m: self._imports(m, tree) for m, tree in self.modules.items()
        }
        self.functions: dict[str, _Function] = {}
        for module, tree in self.modules.items():
            self.functions[f"{module}.<module>"] = _Function(f"{module}.<module>", module, tree)
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    args = node.args
                    params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
                    self.functions[f"{module}.{node.name}"] = _Function(
                        f"{module}.{node.name}", module, node, params
                    )
                    self.names[module].setdefault(node.name, f"{module}.{node.name}")
                elif isinstance(node, ast.ClassDef):
                    # A class is one unit: using it may run any of its methods.
                    self.functions[f"{module}.{node.name}"] = _Function(f"{module}.{node.name}", module, node)
                    self.names[module].setdefault(node.name, f"{module}.{node.name}")
        # (function, parameter) -> the modules it can be bound to.
        self.bindings: dict[tuple[str, str], set[str]] = {}
        self._bind_modules()
        self.client_factories = {
            qualname: service
            for qualname, function in self.functions.items()
            if (service := self._returns_boto3_client(function))
        }

    # --- names -------------------------------------------------------------------------------------

    def _imports(self, module: str, tree: ast.Module) -> dict[str, str]:
        names: dict[str, str] = {}
        package = module.rsplit(".", 1)[0] if "." in module else ""
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    names[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(filter(None, [package.rsplit(".", node.level - 1)[0], base]))
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{base}.{alias.name}"
        return names

    def resolve(self, module: str, node: ast.AST) -> str | None:
        """The qualified name an expression refers to: `enqueue_job` -> guideline_ingest.queue.enqueue_job."""
        if isinstance(node, ast.Name):
            return self.names[module].get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(module, node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def targets(self, function: _Function, node: ast.AST) -> set[str]:
        """What an expression in `function` can refer to, a parameter bound to modules included."""
        if isinstance(node, ast.Name) and node.id in function.params:
            return set(self.bindings.get((function.qualname, node.id), ()))
        if isinstance(node, ast.Attribute):
            return {f"{base}.{node.attr}" for base in self.targets(function, node.value)}
        target = self.resolve(function.module, node)
        return {target} if target else set()

    def callees(self, function: _Function, call: ast.Call) -> set[str]:
        """What a call calls: `partial(f, b=c)` binds its keywords to f's parameters."""
        if self._is_partial(function, call):
            return self.targets(function, call.args[0])
        return self.targets(function, call.func)

    def _is_partial(self, function: _Function, call: ast.Call) -> bool:
        return bool(call.args) and self.targets(function, call.func) == {"functools.partial"}

    def _bind_modules(self) -> None:
        """The modules passed to each parameter, by keyword or as its default, followed through
        parameters that pass them on until nothing changes."""
        for function in self.functions.values():
            node = function.node
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True))
            pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
            for arg, default in pairs:
                module = self.resolve(function.module, default) if default is not None else None
                if module in self.modules:
                    self.bindings.setdefault((function.qualname, arg.arg), set()).add(module)
        changed = True
        while changed:
            changed = False
            for function in self.functions.values():
                for node in self._body_nodes(function):
                    if not isinstance(node, ast.Call):
                        continue
                    for callee in self.callees(function, node):
                        for keyword in filter(lambda k: k.arg, node.keywords):
                            passed = {m for m in self.targets(function, keyword.value) if m in self.modules}
                            known = self.bindings.setdefault((callee, keyword.arg), set())
                            if not passed <= known:
                                known |= passed
                                changed = True

    def _returns_boto3_client(self, function: _Function) -> str | None:
        for node in ast.walk(function.node):
            if (
                isinstance(node, ast.Call)
                and self.resolve(function.module, node.func) == "boto3.client"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                return node.args[0].value
        return None

    # --- reachability ------------------------------------------------------------------------------

    def reachable(self, handler: str, routes: set[tuple[str, str]]) -> set[str]:
        """What can run in a function whose handler is `handler` (app.handler) and which API Gateway
        sends `routes` ((METHOD, /path/{param}) pairs)."""
        entry_module = handler.rsplit(".", 1)[0]
        modules = self._imported_modules(entry_module)
        todo = [f"{m}.<module>" for m in modules] + [handler]
        for module in modules:
            for node in self.modules[module].body:
                if isinstance(node, ast.FunctionDef) and self._route(node) in routes:
                    todo.append(f"{module}.{node.name}")
        seen: set[str] = set()
        while todo:
            qualname = todo.pop()
            if qualname in seen or qualname not in self.functions:
                continue
            seen.add(qualname)
            function = self.functions[qualname]
            for node in self._body_nodes(function):
                if isinstance(node, ast.Name | ast.Attribute):
                    todo.extend(target for target in self.targets(function, node) if target in self.functions)
        return seen

    def _imported_modules(self, entry: str) -> set[str]:
        seen: set[str] = set()
        todo = [entry]
        while todo:
            module = todo.pop()
            if module in seen or module not in self.modules:
                continue
            seen.add(module)
            for target in self.names[module].values():
                parts = target.split(".")
                todo.extend(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        return seen

    def _route(self, node: ast.FunctionDef) -> tuple[str, str] | None:
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and isinstance(decorator.func, ast.Attribute)
                and decorator.func.attr in ROUTE_METHODS
                and decorator.args
                and isinstance(decorator.args[0], ast.Constant)
            ):
                path = re.sub(r"<([^>]+)>", r"{\1}", decorator.args[0].value)
                return decorator.func.attr.upper(), path
        return None

    def _body_nodes(self, function: _Function):
        """The function's own code: a module's excludes its functions' bodies, but keeps decorators."""
        if not isinstance(function.node, ast.Module):
            yield from ast.walk(function.node)
            return
        for statement in function.node.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                for decorator in statement.decorator_list:
                    yield from ast.walk(decorator)
            else:
                yield from ast.walk(statement)

    # --- AWS calls ---------------------------------------------------------------------------------

    def aws_calls(self, reachable: set[str]) -> set[AwsCall]:
        calls: set[AwsCall] = set()
        for qualname in reachable:
            function = self.functions[qualname]
            for node in self._body_nodes(function):
                if not isinstance(node, ast.Call):
                    continue
                where = f"{function.module}:{node.lineno}"
                func = node.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call):
                    service = next(
                        filter(None, map(self.client_factories.get, self.targets(function, func.value.func))),
                        None,
                    )
                    if service:
                        argument = _keyword(node, RESOURCE_PARAMETER.get(service, ""))
                        operation = PRESIGNED.get(func.attr) or _pascal(func.attr)
                        for env_var in self._sources(function, argument, reachable, set()):
                            calls.add(AwsCall(service, operation, env_var, where))
                        continue
                arguments = node.args
                # partial(read_secret, arn) calls read_secret(arn) later: the same AWS call.
                if self.resolve(function.module, func) == "functools.partial" and arguments:
                    func, arguments = arguments[0], arguments[1:]
                helper = next(filter(None, map(AWS_HELPERS.get, self.targets(function, func))), None)
                if helper:
                    service, operation, index = helper
                    argument = arguments[index] if len(arguments) > index else None
                    for env_var in self._sources(function, argument, reachable, set()):
                        calls.add(AwsCall(service, operation, env_var, where))
        return calls

    def _sources(self, function: _Function, node: ast.AST | None, reachable: set[str], seen: set) -> set:
        """Environment variables an argument's value can come from (None: untraceable)."""
        if node is None:
            return {None}
        if isinstance(node, ast.Subscript) and self.resolve(function.module, node.value) == "os.environ":
            return {_constant(node.slice)}
        if isinstance(node, ast.Call):
            if self.resolve(function.module, node.func) in ("os.environ.get", "os.getenv") and node.args:
                return {_constant(node.args[0])}
            return {None}
        if isinstance(node, ast.Attribute):
            # A settings model's field: pydantic-settings reads `webhook_queue_url` from WEBHOOK_QUEUE_URL.
            return {node.attr.upper()}
        if isinstance(node, ast.Name):
            key = (function.qualname, node.id)
            if key in seen:
                return set()
            seen = seen | {key}
            assigned = [
                target_value
                for statement in ast.walk(function.node)
                for target_value in _assignments(statement, node.id)
            ]
            if assigned:
                return set().union(*(self._sources(function, value, reachable, seen) for value in assigned))
            if node.id in function.params:
                return self._argument_sources(
                    function, function.params.index(node.id), node.id, reachable, seen
                )
        return {None}

    def _argument_sources(
        self, callee: _Function, index: int, name: str, reachable: set[str], seen: set
    ) -> set:
        sources: set = set()
        for qualname in reachable:
            caller = self.functions[qualname]
            for node in self._body_nodes(caller):
                if isinstance(node, ast.Call) and callee.qualname in self.callees(caller, node):
                    arguments = node.args[1:] if self._is_partial(caller, node) else node.args
                    argument = _keyword(node, name) or (arguments[index] if len(arguments) > index else None)
                    sources |= self._sources(caller, argument, reachable, seen)
        return sources


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _constant(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _assignments(statement: ast.AST, name: str):
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            if isinstance(target, ast.Name) and target.id == name:
                yield statement.value
    elif isinstance(statement, ast.NamedExpr | ast.AnnAssign):
        named = getattr(statement.target, "id", None) == name
        if named and statement.value is not None:
            yield statement.value
