"""The Spark cluster target (`type: cluster`, Workbench's HDInsight target): spark-submit on a head
node over SSH (YARN, standalone or local[N]), or a Livy endpoint over HTTP(S). One concept a module:
settings (the .compute keys), submit (argv, application ids), yarn (the ResourceManager), headenv
(the environment on the head node), executor (the SSH executor and its handle), livy.
"""

from .executor import ClusterExecutor, ClusterRunHandle
from .settings import ClusterSettings

__all__ = ["ClusterExecutor", "ClusterRunHandle", "ClusterSettings"]
