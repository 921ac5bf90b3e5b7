"""Unit tests for nearline.completion.cache: memory LRU, disk persistence, unwritable folders."""

from __future__ import annotations

import logging

import pytest

from nearline.completion.cache import CompletionCache, cache_key


@pytest.fixture
def caches():
    """Caches made by a test, closed after it."""
    made: list[CompletionCache] = []

    def make(*args, **kwargs) -> CompletionCache:
        cache = CompletionCache(*args, **kwargs)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


# -- cache_key -------------------------------------------------------------------------------


def test_cache_key_is_stable_hex():
    key = cache_key("model", "tpl", "line", "prompt", "suffix")
    assert key == cache_key("model", "tpl", "line", "prompt", "suffix")
    assert len(key) == 40
    int(key, 16)


def test_cache_key_differs_per_part():
    parts = ["model", "tpl", "line", "prompt", "suffix"]
    base = cache_key(*parts)
    for i in range(len(parts)):
        changed = list(parts)
        changed[i] += "x"
        assert cache_key(*changed) != base


def test_cache_key_parts_are_separated():
    assert cache_key("ab", "c") != cache_key("a", "bc")
    assert cache_key("abc") != cache_key("ab", "c")
    assert cache_key("a", "") != cache_key("a")


def test_cache_key_handles_lone_surrogates():
    assert cache_key("\ud800") != cache_key("\udc00")


# -- memory ----------------------------------------------------------------------------------


def test_memory_get_put(caches):
    cache = caches(None)
    assert cache.disk_error is None
    assert cache.get("k") is None
    cache.put("k", "value")
    assert cache.get("k") == "value"
    cache.put("k", "other")
    assert cache.get("k") == "other"


def test_empty_suggestion_is_cached(caches):
    cache = caches(None)
    cache.put("k", "")
    assert cache.get("k") == ""


def test_memory_lru_evicts_least_recently_used(caches):
    cache = caches(None, memory_entries=2)
    cache.put("a", "1")
    cache.put("b", "2")
    cache.put("c", "3")  # evicts a
    assert cache.get("a") is None
    assert cache.get("b") == "2"  # b is now most recent
    cache.put("d", "4")  # evicts c
    assert cache.get("c") is None
    assert cache.get("b") == "2"
    assert cache.get("d") == "4"


def test_memory_lru_put_refreshes_entry(caches):
    cache = caches(None, memory_entries=2)
    cache.put("a", "1")
    cache.put("b", "2")
    cache.put("a", "1b")  # a is now most recent
    cache.put("c", "3")  # evicts b
    assert cache.get("b") is None
    assert cache.get("a") == "1b"
    assert cache.get("c") == "3"


def test_flush_without_disk(caches):
    cache = caches(None)
    cache.put("k", "v")
    cache.flush()
    assert cache.get("k") == "v"


# -- disk ------------------------------------------------------------------------------------


def test_value_survives_restart(tmp_path):
    directory = tmp_path / "cache"
    first = CompletionCache(directory)
    assert first.disk_error is None
    first.put("k", "suggestion")
    first.flush()
    first.close()
    assert directory.is_dir()

    second = CompletionCache(directory)
    try:
        assert second.disk_error is None
        assert second.get("k") is None  # get reads memory only (the event loop's)
        assert second.load("k") == "suggestion"
        assert second.get("k") == "suggestion"  # load kept it in memory
        assert second.load("missing") is None
    finally:
        second.close()


def test_disk_serves_values_evicted_from_memory(caches, tmp_path):
    cache = caches(tmp_path / "cache", memory_entries=1)
    cache.put("a", "1")
    cache.put("b", "2")
    cache.flush()
    assert cache.load("a") == "1"  # from disk, back into memory
    assert cache.get("b") is None  # evicted by a: memory only
    assert cache.load("b") == "2"


def test_directory_is_created(caches, tmp_path):
    directory = tmp_path / "deep" / "er" / "cache"
    cache = caches(directory)
    assert cache.disk_error is None
    assert directory.is_dir()


def test_unwritable_directory_falls_back_to_memory(caches, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    directory = blocker / "cache"
    with caplog.at_level(logging.WARNING, logger="nearline.completion.cache"):
        cache = caches(directory)
    assert cache.disk_error is not None
    assert str(directory) in cache.disk_error
    assert "memory" in cache.disk_error
    assert any("not writable" in r.getMessage() for r in caplog.records)
    cache.put("k", "v")
    cache.flush()
    assert cache.get("k") == "v"
    assert cache.get("other") is None
    assert blocker.read_text() == "not a folder"


def test_unwritable_directory_close_does_not_raise(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = CompletionCache(blocker)  # the path itself is a file
    assert cache.disk_error is not None
    cache.put("k", "v")
    assert cache.get("k") == "v"
    cache.close()
