"""The SSH layer remote targets share; paramiko is imported only when a connection is made.

    endpoint = resolve_endpoint(SshSettings.from_target(target), project=root)   # sshconfig.py
    conn = shared_pool().get(endpoint)               # ssh.py: one connection per user@host:port
    stats = BlobSync(conn).push(snapshot, f"runs/{run_id}/wd")                   # blobsync.py
    proc = start_detached(conn, argv, state_dir=..., cwd=..., env=...)           # detached.py
    state = call_with_retry(endpoint, lambda c: poll(c, proc, cursor), on_retry=show)  # retry.py
    BlobSync(conn).pull_folder(f"runs/{run_id}/wd/outputs", sink)
    client = docker_client(SshConnection(endpoint).connect())    # dockerssh.py: the host's engine

Host keys are checked by hostkeys.py, users authenticated by auth.py. Link failures raise
TransportError (retry them); host key and authentication refusals raise errors that are not.
"""
