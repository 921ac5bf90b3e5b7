"""Unit tests for nearline.completion.engine.templates and models/templates.toml."""

from __future__ import annotations

import pytest

from nearline.completion.engine.templates import (
    PREFIX_ONLY,
    FimTemplate,
    detect_template,
    get_template,
    registry,
)
from nearline.errors import ConfigError
from nearline.paths import bundled_data_dir

PREFIX = "def f("
SUFFIX = "):\n"

# The exact prompt each template builds for PREFIX / SUFFIX.
EXPECTED = {
    "prefix-only": "def f(",
    "qwen2.5-coder": "<|fim_prefix|>def f(<|fim_suffix|>):\n<|fim_middle|>",
    "qwen2.5-coder-line": "<|file_sep|>\n<|fim_prefix|>def f(<|fim_suffix|>):\n<|fim_middle|>",
    "qwen2.5-coder-spm": "<|fim_suffix|>):\n<|fim_prefix|>def f(<|fim_middle|>",
    "starcoder": "<fim_prefix>def f(<fim_suffix>):\n<fim_middle>",
    "deepseek-coder": "<｜fim▁begin｜>def f(<｜fim▁hole｜>):\n<｜fim▁end｜>",
    "codellama": "<PRE> def f( <SUF>):\n <MID>",
    "codestral": "[SUFFIX]):\n[PREFIX]def f(",
    "codegemma": "<|fim_prefix|>def f(<|fim_suffix|>):\n<|fim_middle|>",
}


def test_templates_file_is_bundled():
    assert (bundled_data_dir() / "templates.toml").is_file()


def test_registry_holds_exactly_the_known_templates_in_file_order():
    assert list(registry()) == list(EXPECTED)
    for tid, template in registry().items():
        assert isinstance(template, FimTemplate)
        assert template.id == tid
        assert template.family
        assert template.stop


@pytest.mark.parametrize("tid", list(EXPECTED))
def test_render_exact_layout(tid):
    assert get_template(tid).render(PREFIX, SUFFIX) == EXPECTED[tid]


def test_deepseek_markers_use_fullwidth_bar_and_lower_block():
    # U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK, as in the vocabulary.
    assert get_template("deepseek-coder").markers == (
        "<\uff5cfim\u2581begin\uff5c>",
        "<\uff5cfim\u2581hole\uff5c>",
        "<\uff5cfim\u2581end\uff5c>",
    )
    assert EXPECTED["deepseek-coder"] == (
        "<\uff5cfim\u2581begin\uff5c>def f("
        "<\uff5cfim\u2581hole\uff5c>):\n<\uff5cfim\u2581end\uff5c>"
    )


@pytest.mark.parametrize("tid", [t for t in EXPECTED if t != PREFIX_ONLY])
def test_every_marker_appears_in_the_fim_string(tid):
    template = get_template(tid)
    for marker in template.markers:
        assert marker in template.fim
    assert template.uses_suffix


def test_prefix_only_does_not_use_suffix():
    template = get_template(PREFIX_ONLY)
    assert not template.uses_suffix
    assert template.markers == ()
    assert template.match == ()
    assert template.render("abc", "ignored") == "abc"


@pytest.mark.parametrize("tid", list(EXPECTED))
def test_braces_in_code_survive_render(tid):
    prefix = "s = '{prefix}' + f'{x}' + '{suffix}{'"
    suffix = "} {suffix} {prefix} {{prefix}}\n"
    rendered = get_template(tid).render(prefix, suffix)
    assert rendered == EXPECTED[tid].replace("def f(", prefix, 1).replace("):\n", suffix, 1)


def test_backslashes_in_code_survive_render():
    prefix = r"re.sub(r'\1\g<0>', '\\n'"
    rendered = get_template("starcoder").render(prefix, r"\2)")
    assert rendered == "<fim_prefix>" + prefix + "<fim_suffix>" + r"\2)" + "<fim_middle>"


def test_render_empty_prefix_and_suffix():
    assert get_template("qwen2.5-coder").render("", "") == (
        "<|fim_prefix|><|fim_suffix|><|fim_middle|>"
    )
    assert get_template("codellama").render("", "") == "<PRE>  <SUF> <MID>"


# -- detect_template -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, tid",
    [
        ("Qwen2.5 Coder 1.5B Instruct", PREFIX_ONLY),  # qwen2.5-coder's auto
        ("qwen2.5-coder-0.5b-q8_0.gguf", PREFIX_ONLY),
        ("starcoder2-3b", "starcoder"),
        ("StarCoder2 7B", "starcoder"),
        ("deepseek-coder-1.3b-base", "deepseek-coder"),
        ("DeepSeek Coder 6.7B Instruct", "deepseek-coder"),
        ("CodeLlama 7B", "codellama"),
        ("codellama-7b.Q4_K_M.gguf", "codellama"),
        ("Codestral-22B", "codestral"),
        ("codegemma-2b", "codegemma"),
        ("CodeGemma 7b", "codegemma"),
    ],
)
def test_detect_template_by_name_fragment(name, tid):
    assert detect_template([name]).id == tid


@pytest.mark.parametrize("name", ["SmolLM2 135M Instruct", "Llama 3.2 1B", "Qwen2.5 1.5B", ""])
def test_detect_template_falls_back_to_prefix_only(name):
    assert detect_template([name]).id == PREFIX_ONLY


def test_detect_template_no_names():
    assert detect_template([]).id == PREFIX_ONLY


def test_detect_template_looks_at_every_name():
    names = ["SmolLM2 135M Instruct", "", "starcoder2-3b-Q4_K_M.gguf"]
    assert detect_template(names).id == "starcoder"


def test_detect_template_checks_markers_are_single_tokens():
    asked: list[str] = []

    def yes(text: str) -> bool:
        asked.append(text)
        return True

    assert detect_template(["starcoder2-3b"], yes).id == "starcoder"
    assert asked == ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]


def test_detect_template_falls_back_when_markers_are_not_single_tokens():
    assert detect_template(["Qwen2.5 Coder 1.5B Instruct"], lambda m: False).id == PREFIX_ONLY
    # One missing marker is enough.
    only_two = {"<fim_prefix>", "<fim_suffix>"}
    assert detect_template(["starcoder2-3b"], lambda m: m in only_two).id == PREFIX_ONLY


def test_detect_template_single_token_check_not_asked_for_unmatched_templates():
    asked: list[str] = []

    def record(text: str) -> bool:
        asked.append(text)
        return True

    assert detect_template(["SmolLM2 135M Instruct"], record).id == PREFIX_ONLY
    assert asked == []


# -- get_template ----------------------------------------------------------------------------


def test_get_template_known_ids():
    for tid in EXPECTED:
        assert get_template(tid).id == tid


@pytest.mark.parametrize("tid", ["nope", "auto", "Qwen2.5-Coder", ""])
def test_get_template_unknown_id_raises_config_error(tid):
    with pytest.raises(ConfigError) as info:
        get_template(tid)
    message = str(info.value)
    assert "model.template" in message
    assert repr(tid) in message
    for known in EXPECTED:
        assert known in message


def test_context_blocks_go_before_the_hole_with_their_path():
    qwen = get_template("qwen2.5-coder-line")
    assert qwen.suffix == "line"
    rendered = qwen.render("x = ", "", [("a.py", "y = 2\n")], "a.py")
    assert rendered == (
        "<|file_sep|>a.py\ny = 2\n\n"
        "<|file_sep|>a.py\n<|fim_prefix|>x = <|fim_suffix|><|fim_middle|>"
    )


def test_a_template_without_match_is_never_detected():
    assert all(not get_template(t).match for t in ("qwen2.5-coder-line", "qwen2.5-coder-spm"))
    assert detect_template(["qwen2.5-coder-0.5b"], lambda m: True).id == PREFIX_ONLY


def test_a_family_detected_serves_the_template_its_auto_names():
    assert get_template("qwen2.5-coder").auto == PREFIX_ONLY
    assert get_template("qwen2.5-coder").uses_suffix  # still FIM when named in model.template
    served = detect_template(["Qwen2.5 Coder 0.5B"], lambda m: True)
    assert served.id == PREFIX_ONLY and not served.uses_suffix
    assert set(get_template("qwen2.5-coder").stop) <= set(served.stop)  # the family's stops too


def test_an_auto_naming_no_template_is_a_config_error(monkeypatch, tmp_path):
    import nearline.completion.engine.templates as templates

    (tmp_path / "templates.toml").write_text(
        '[prefix-only]\nfamily = "x"\nfim = "{prefix}"\n'
        '[fam]\nfamily = "y"\nfim = "{prefix}{suffix}"\nauto = "gone"\n'
    )
    monkeypatch.setattr(templates, "bundled_data_dir", lambda: tmp_path)
    templates.registry.cache_clear()
    try:
        with pytest.raises(ConfigError, match="auto = 'gone'"):
            templates.registry()
    finally:
        templates.registry.cache_clear()


def test_an_unknown_suffix_layout_is_a_config_error():
    from nearline.completion.engine.templates import _template

    with pytest.raises(ConfigError, match="suffix"):
        _template("x", {"family": "x", "fim": "{prefix}", "suffix": "middle"})
