"""The runner reads everything from the SAM template: intrinsics, Globals, events, queues."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devstack.settings import load_settings, read_env_file
from devstack.template import UNRESOLVED, TemplateError, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"


def test_the_project_template_gives_routes_queues_and_event_sources():
    template = load_template(TEMPLATE, {"ProcessTimeoutSeconds": "5"}, {"JobsQueue": "http://sqs/JobsQueue"})

    submit = template.function("submit")
    assert submit.logical_id == "SubmitFunction"
    assert ("POST", "/jobs", True) in [(r.method, r.path, r.api_key_required) for r in submit.routes]
    assert submit.environment["JOBS_QUEUE_URL"] == "http://sqs/JobsQueue"
    assert submit.environment["POWERTOOLS_SERVICE_NAME"]  # merged from Globals
    assert submit.layer_dirs == [ROOT / "layers" / "core"]
    assert submit.code_dir == ROOT / "functions" / "submit"

    status_routes = {r.path: r.api_key_required for r in template.function("StatusFunction").routes}
    assert status_routes["/jobs/{event_id}"] is True
    assert status_routes["/health"] is False

    process = template.function("process")
    assert process.timeout == 5
    (source,) = process.sqs_sources
    assert source.queue == "JobsQueue"
    assert source.report_batch_item_failures
    assert source.maximum_concurrency == int(template.parameters["ProcessMaxConcurrency"])

    jobs = template.queues["JobsQueue"]
    assert jobs.dead_letter_queue == "JobsDeadLetterQueue"
    assert jobs.max_receive_count == int(template.parameters["MaxReceiveCount"])
    assert jobs.attributes["VisibilityTimeout"] == template.parameters["JobsVisibilityTimeoutSeconds"]

    (schedule,) = template.function("sweeper").schedules
    assert schedule.expression.startswith("rate(")


def test_queue_urls_stay_unresolved_until_the_queues_exist():
    template = load_template(TEMPLATE)
    assert template.function("submit").environment["JOBS_QUEUE_URL"] is UNRESOLVED


def test_unknown_parameter_override_is_refused():
    with pytest.raises(TemplateError, match="NoSuchParameter"):
        load_template(TEMPLATE, {"NoSuchParameter": "1"})


def test_unknown_function_names_the_known_ones():
    with pytest.raises(KeyError, match="submit"):
        load_template(TEMPLATE).function("nope")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_intrinsics_conditions_and_globals(tmp_path):
    path = _write(
        tmp_path,
        """
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          Mode: {Type: String, Default: local}
          Names: {Type: CommaDelimitedList, Default: "a,b"}
          Secret: {Type: String, Default: ""}
        Conditions:
          IsLocal: !Equals [!Ref Mode, local]
          HasSecret: !Not [!Equals [!Ref Secret, ""]]
          Either: !Or [!Condition IsLocal, !Condition HasSecret]
        Globals:
          Function:
            Timeout: 7
            Environment:
              Variables:
                SHARED: from-globals
                OVERRIDDEN: globals
        Resources:
          Queue:
            Type: AWS::SQS::Queue
            Properties: {QueueName: named-queue, VisibilityTimeout: 12}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: code/
              Handler: app.handler
              Environment:
                Variables:
                  OVERRIDDEN: function
                  SUB: !Sub "${AWS::Region}/${Mode}/${Queue.QueueName}/${!literal}"
                  JOINED: !Join ["+", !Ref Names]
                  CHOSEN: !If [IsLocal, yes-local, not-local]
                  EITHER: !If [Either, "true", "false"]
                  GONE: !If [HasSecret, !Ref Secret, !Ref AWS::NoValue]
                  ARN: !GetAtt Queue.Arn
                  IMPORTED: !ImportValue other-stack-output
        """,
    )
    spec = load_template(path).function("Fn")
    env = spec.environment
    assert spec.timeout == 7
    assert spec.memory_size == 128  # SAM's default
    assert env["SHARED"] == "from-globals"
    assert env["OVERRIDDEN"] == "function"
    assert env["SUB"] == "us-east-1/local/named-queue/${literal}"
    assert env["JOINED"] == "a+b"
    assert env["CHOSEN"] == "yes-local"
    assert env["EITHER"] == "true"
    assert "GONE" not in env
    assert env["ARN"] == "arn:aws:sqs:us-east-1:123456789012:named-queue"
    assert env["IMPORTED"] is UNRESOLVED

    other = load_template(path, {"Mode": "cloud"}).function("Fn").environment
    assert other["CHOSEN"] == "not-local"


def test_api_defaults_and_queue_names_with_a_suffix(tmp_path):
    path = _write(
        tmp_path,
        """
        Resources:
          Api: {Type: AWS::Serverless::Api, Properties: {StageName: Prod}}
          Dlq: {Type: AWS::SQS::Queue}
          Main:
            Type: AWS::SQS::Queue
            Properties:
              RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 3}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: code/
              Handler: app.handler
              Events:
                Get:
                  Type: Api
                  Properties: {RestApiId: !Ref Api, Path: "/things/{id}", Method: get}
                Consume:
                  Type: SQS
                  Properties: {Queue: !GetAtt Main.Arn}
        """,
    )
    template = load_template(path, name_suffix="ABC")
    (route,) = template.function("Fn").routes
    assert (route.method, route.api_key_required, template.apis[route.api_id].stage) == ("GET", False, "Prod")
    assert template.queues["Main"].name.endswith("-Main-ABC")
    assert template.queues["Main"].dead_letter_queue == "Dlq"
    (source,) = template.function("Fn").sqs_sources
    assert (source.batch_size, source.report_batch_item_failures) == (10, False)


def test_env_files_and_precedence(tmp_path):
    (tmp_path / ".env.example").write_text("PORT=3000\nAPI_KEYS=a,b\nOPENAI_MODEL=gpt\n# comment\n")
    (tmp_path / ".env").write_text("export PORT='4000'\nOPENAI_MODEL=llama # local model\n")
    assert read_env_file(tmp_path / ".env") == {"PORT": "4000", "OPENAI_MODEL": "llama"}
    literal = tmp_path / "literal.env"
    literal.write_text("KEY=\"a ${HOME} b\"\nEMPTY=\nBARE_NAME\nHASH='x # y'\n")
    assert read_env_file(literal) == {"KEY": "a ${HOME} b", "EMPTY": "", "HASH": "x # y"}

    settings = load_settings(tmp_path, {"API_KEYS": "c"}, environ={"PORT": "5000", "UNRELATED": "x"})
    assert settings.get("PORT") == "5000"  # the shell beats .env
    assert settings.api_keys == ["c"]  # explicit overrides beat everything
    assert settings.explicit_value("OPENAI_MODEL") == "llama"
    assert "UNRELATED" not in settings.values  # only documented knobs come from the shell

    defaults_only = load_settings(tmp_path, read_dotenv=False, environ={})
    assert defaults_only.get("OPENAI_MODEL") == "gpt"
    assert defaults_only.explicit_value("OPENAI_MODEL") is None
