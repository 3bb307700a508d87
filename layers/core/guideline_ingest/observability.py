"""The Powertools logger and metrics shared by every module of a function.

Tracer is created by the functions that use it (process, sweeper): its X-Ray SDK
import costs about half a second of cold start, which the API functions do not pay;
they are traced by Lambda's active tracing alone.
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
