"""The files of tensors the suite writes and reads (minmax_envs.checkpoint): atomic writes that never go through a
link, the one safe reader (regular files only, a size cap, a recorded digest). Bad checkpoint and controller files
are rows of the bad-input table, tests/test_bad_inputs.py."""

import hashlib

import pytest
import torch

from minmax_envs.checkpoint import UnreadableTensorFile, load_tensors, save_tensors


def test_a_write_replaces_a_link_at_its_path_and_never_writes_through_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.pt"
    victim.write_bytes(b"the user's file")
    work = tmp_path / "work"
    work.mkdir()
    path = work / "c.pt"
    path.symlink_to(victim)
    (work / "c.pt.tmp").symlink_to(outside / "planted")  # where the temporary file used to be written
    digest = save_tensors(path, {"x": torch.arange(3.0)})
    assert victim.read_bytes() == b"the user's file" and not (outside / "planted").exists()
    assert path.is_file() and not path.is_symlink()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert torch.equal(load_tensors(path, max_bytes=1 << 20, sha256=digest)["x"], torch.arange(3.0))
    assert sorted(p.name for p in work.iterdir()) == ["c.pt", "c.pt.tmp"]  # no temporary file left behind


def test_a_write_refuses_what_the_reader_would_not_read_back(tmp_path):
    with pytest.raises(TypeError, match=r"cannot save the state\['a'\]\[1\]: a complex"):
        save_tensors(tmp_path / "c.pt", {"a": [1, 2j]}, what="the state")
    assert list(tmp_path.iterdir()) == []


def test_the_reader_refuses_a_file_over_its_size_or_off_its_digest(tmp_path):
    path = tmp_path / "c.pt"
    digest = save_tensors(path, {"x": torch.zeros(100)})
    size = path.stat().st_size
    with pytest.raises(UnreadableTensorFile, match=f"it is {size} bytes, more than the 100 bytes"):
        load_tensors(path, max_bytes=100)
    other = save_tensors(tmp_path / "d.pt", {"x": torch.ones(100)})
    (tmp_path / "d.pt").replace(path)  # another file under this name
    with pytest.raises(UnreadableTensorFile, match="its SHA-256 is not the one recorded when it was written"):
        load_tensors(path, max_bytes=1 << 20, sha256=digest)
    assert torch.equal(load_tensors(path, max_bytes=1 << 20, sha256=other)["x"], torch.ones(100))


def test_old_import_paths_of_the_episode_module_still_work():
    from minmax_envs.episode import EpisodeResult, check_samples, episode_result, final_samples, run_episode  # noqa: F401
    from minmax_envs.games._base import PLAYERS, Params, PlayerParams  # noqa: F401
    from minmax_envs.types import PLAYERS as PUBLIC

    assert PLAYERS is PUBLIC
