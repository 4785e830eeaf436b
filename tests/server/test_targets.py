"""Compute targets over REST: list, show, check, attach (no secret stored), detach, prepare."""

from __future__ import annotations

from pathlib import Path

from .conftest import Api


def rel(api: Api, path: Path) -> str:
    return path.relative_to(api.server.root).as_posix()


def test_a_new_folder_lists_the_built_in_targets_and_local_is_reachable(api: Api, project_dir: Path) -> None:
    # Given a folder with no aml_config/
    listing = api.get("targets", params={"path": rel(api, project_dir)}).json()
    # Then its project is the folder, with the built-in local and docker targets
    assert listing["project"] == {"path": rel(api, project_dir), "name": project_dir.name}
    assert {(t["id"], t["type"]) for t in listing["targets"]} == {("local", "local"), ("docker", "docker")}
    # And local answers a check
    check = api.get("targets/local/check", params={"path": rel(api, project_dir)}).json()
    assert check == {"id": "local", "reachable": True, "message": None}


def test_attach_writes_the_files_with_no_secret_then_detach_removes_them(api: Api, project_dir: Path) -> None:
    params = {"path": rel(api, project_dir)}
    # When the user attaches a remote docker target whose password is in an environment variable
    form = {
        "name": "gpuvm",
        "type": "remotedocker",
        "address": "gpu.lab:2222",
        "username": "ana",
        "password_env": "GPUVM_PASSWORD",
    }
    resp = api.post("targets", params=params, json=form)
    assert resp.status_code == 201, resp.text
    target = resp.json()
    # Then the .compute and .runconfig files exist and name the variable, never a value
    compute = project_dir / "aml_config" / "gpuvm.compute"
    assert compute.is_file() and (project_dir / "aml_config" / "gpuvm.runconfig").is_file()
    assert "passwordEnv: GPUVM_PASSWORD" in compute.read_text()
    assert (target["address"], target["port"], target["password_env"]) == ("gpu.lab", 2222, "GPUVM_PASSWORD")
    shown = api.get("targets/gpuvm", params=params).json()
    assert "GPUVM_PASSWORD" in shown["file"] and shown["run_configurations"] == ["gpuvm"]
    # And a password is refused outright, with nothing written
    resp = api.post("targets", params=params, json={**form, "name": "other", "password": "hunter2"})
    assert resp.status_code == 400 and "never stored" in resp.json()["message"]
    assert not (project_dir / "aml_config" / "other.compute").exists()
    # And attaching the same name again says it exists; an unknown type is a 400
    again = api.post("targets", params=params, json=form)
    assert again.status_code == 400 and "already exists" in again.json()["message"]
    bad = api.post("targets", params=params, json={"name": "x", "type": "mainframe"})
    assert bad.status_code == 400 and "mainframe" in bad.json()["message"]
    # When the user detaches it, both files are gone
    removed = api.delete("targets/gpuvm", params=params).json()["removed"]
    assert sorted(Path(p).name for p in removed) == ["gpuvm.compute", "gpuvm.runconfig"]
    assert not compute.exists()
    assert api.delete("targets/gpuvm", params=params).status_code == 404


def test_unknown_target_is_a_404_naming_the_known_ones(api: Api, project_dir: Path) -> None:
    params = {"path": rel(api, project_dir)}
    for path in ("targets/nope", "targets/nope/check"):
        resp = api.get(path, params=params)
        assert resp.status_code == 404 and "local" in resp.json()["message"]


def test_prepare_streams_its_log_and_ends_done(api: Api, project_dir: Path) -> None:
    # When the user prepares the local target (user-managed: nothing to build)
    events = list(
        api.events("POST", "targets/local/prepare", prepare=True, params={"path": rel(api, project_dir)})
    )
    # Then the stream ends with one done event saying it worked
    assert events[-1][0] == "done" and events[-1][1]["ok"] is True
    assert api.post("targets/nope/prepare", params={"path": rel(api, project_dir)}).status_code == 404


def test_attach_takes_a_keyring_entry_or_a_key_file_as_the_secret(api: Api, project_dir: Path) -> None:
    params = {"path": rel(api, project_dir)}
    base = {"type": "remote", "address": "10.0.0.5", "username": "ana"}
    # When one target names a keyring entry and another a private key file
    ring = api.post("targets", params=params, json={**base, "name": "ring", "password_keyring": "gpu/ana"})
    key = api.post("targets", params=params, json={**base, "name": "key", "key_file": "~/.ssh/id_ed25519"})
    # Then each file says where the secret is, and the listing shows it the same way
    assert ring.status_code == 201 and key.status_code == 201, (ring.text, key.text)
    assert "passwordKeyring: gpu/ana" in (project_dir / "aml_config" / "ring.compute").read_text()
    assert "privateKeyFile: ~/.ssh/id_ed25519" in (project_dir / "aml_config" / "key.compute").read_text()
    listed = {t["id"]: t for t in api.get("targets", params=params).json()["targets"]}
    assert (listed["ring"]["password_keyring"], listed["key"]["key_file"]) == ("gpu/ana", "~/.ssh/id_ed25519")
    # And an unknown field is refused rather than written
    bad = api.post("targets", params=params, json={**base, "name": "x", "secret": "hunter2"})
    assert bad.status_code == 400 and "secret" in bad.json()["message"]
