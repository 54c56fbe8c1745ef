"""Code normalisers run only from the allow-list (issue #27, item 7): an entry point of the group
w2v2bench.normalizers or a line of the user's own file; naming an installed function is not enough."""

from __future__ import annotations

import importlib.util

import pytest

from w2v2bench.metrics.normalizers import allowed_code_normalizers, normalizer


@pytest.fixture
def allow_list(tmp_path, monkeypatch):
    path = tmp_path / "normalizers.txt"
    monkeypatch.setenv("W2V2BENCH_NORMALIZERS", str(path))
    return path


@pytest.mark.parametrize("spec", ["yaml:unsafe_load", "sympy:sympify", "yaml:load", "pickle:loads"])
def test_an_installed_function_that_evaluates_text_is_not_enough(spec, allow_list, tmp_path):
    marker = tmp_path / "PWNED"
    with pytest.raises(ValueError, match=rf"normalizer='{spec}' is not on the allow-list of code normalisers"):
        normalizer(spec, allow_code=True)(f"!!python/object/apply:os.system ['touch {marker}']")
    assert not marker.exists()


def test_a_listed_function_runs_by_spec_and_by_name(allow_list, tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text("def shout(text):\n    return text.upper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    allow_list.write_text("# my normalisers\nloud = mine:shout\nmine:shout  # by its spec too\n")
    assert normalizer("loud", allow_code=True)("a cat") == "A CAT"
    assert normalizer("mine:shout", allow_code=True)("a dog") == "A DOG"
    with pytest.raises(ValueError, match="is code"):  # a run's or a file's value never runs, listed or not
        normalizer("loud")


def test_the_leaderboards_normaliser_is_declared_by_name(allow_list, tmp_path, monkeypatch):
    assert allowed_code_normalizers()["leaderboard"] == "normalizer.data_utils:normalizer"  # pyproject's entry point
    (tmp_path / "normalizer").mkdir()
    (tmp_path / "normalizer" / "__init__.py").write_text("")
    (tmp_path / "normalizer" / "data_utils.py").write_text("def normalizer(text):\n    return text.lower()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert normalizer("leaderboard", allow_code=True)("A CAT") == "a cat"


def test_a_malformed_allow_list_line_is_one_error_naming_it(allow_list):
    allow_list.write_text("ok = mine:shout\nnot a spec\n")
    with pytest.raises(ValueError, match=r"normalizers.txt:2: expected `name = module:function`"):
        normalizer("mine:shout", allow_code=True)


def test_the_standard_library_stays_refused_even_when_listed(allow_list):
    allow_list.write_text("os:system\nrun = subprocess:run\n")
    for spec in ("os:system", "run"):
        with pytest.raises(ValueError, match="standard library"):
            normalizer(spec, allow_code=True)


@pytest.mark.skipif(importlib.util.find_spec("yaml") is None, reason="pyyaml")
def test_the_builtin_names_need_no_list(allow_list):
    assert normalizer("basic", allow_code=True)("a, cat!") == "A CAT"
