"""The unit tier loads no shared fixture (make test-unit: --confcutdir). What the code reads at
import (the request model's limit, the logger's service name) is set as the template gives it."""

from support import set_import_environment

set_import_environment()
