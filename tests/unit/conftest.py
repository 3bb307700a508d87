"""The unit tier loads no shared fixture (make test-unit: --confcutdir). What the code reads at
import (the request model's limit, the logger's service name) is set as the template gives it."""

import os

from support import template_environment

os.environ.update(template_environment())
