"""The plux plugin LocalStack finds in `localstack.lambda.runtime_executor` (name: local-process)."""

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class LocalProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "local-process"

    def load(self, *args, **kwargs):
        # Imported on use, as LocalStack's own docker plugin does: loading the plugin stays cheap.
        from localprocess_executor.executor import LocalProcessRuntimeExecutor

        return LocalProcessRuntimeExecutor
