"""The SSH layer remote targets share: endpoints from ~/.ssh/config, host keys, connections,
detached remote processes and snapshot transfer by delta. paramiko is imported only when used."""
