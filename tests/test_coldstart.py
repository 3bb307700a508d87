"""Every function ends its cold start by exempting what init built from garbage collection."""

from __future__ import annotations

import gc
import sys

import pytest

from conftest import load_function


@pytest.mark.parametrize("function", ["submit", "status", "process", "sweeper", "webhook"])
def test_init_freezes_what_it_built_once_everything_module_level_exists(environment, monkeypatch, function):
    frozen = []

    def freeze() -> None:
        frozen.append(dict(sys._getframe(2).f_globals))  # the handler module, as it stands

    monkeypatch.setattr(gc, "freeze", freeze)
    module = load_function(function)
    assert len(frozen) == 1
    assert frozen[0]["handler"] is module.handler  # the last thing: the handler already exists
