// A real single-node YARN for the tests: Hadoop's MiniYARNCluster (one ResourceManager, one
// NodeManager that launches real container processes), every address on 127.0.0.1 at the ports
// given, logs aggregated to a local folder. When the RM and NM answer it writes yarn-site.xml and
// core-site.xml into CONF_DIR (temp name, then rename) and prints one line:
//   MINIYARN READY rm=127.0.0.1:PORT web=http://127.0.0.1:PORT
// then runs until it is sent SIGTERM. Started by scripts/infra/spark.sh (ensure_yarn).
//
// usage: java -cp JARS MiniYarn CONF_DIR WORK_DIR PORT_BASE MEMORY_MB VCORES
//   ports: PORT_BASE scheduler, +1 resource tracker, +2 client RPC, +3 admin, +58 web UI/REST
import java.io.File;
import java.io.FileOutputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.CountDownLatch;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;

public final class MiniYarn {
  private MiniYarn() {}

  public static void main(String[] args) {
    try {
      run(args);
    } catch (Throwable e) {
      // Without this a failed start leaves the JVM alive on the cluster's non-daemon threads.
      e.printStackTrace();
      System.err.println("MINIYARN FAILED: " + e);
      System.exit(1);
    }
  }

  private static void run(String[] args) throws Exception {
    if (args.length != 5) {
      System.err.println("usage: MiniYarn CONF_DIR WORK_DIR PORT_BASE MEMORY_MB VCORES");
      System.exit(2);
    }
    File confDir = new File(args[0]);
    File work = new File(args[1]);
    int base = Integer.parseInt(args[2]);
    String host = "127.0.0.1";
    confDir.mkdirs();
    work.mkdirs();

    YarnConfiguration conf = new YarnConfiguration();
    // No HDFS: the default file system is the local one, as in Spark's YarnClusterSuite.
    conf.set("fs.defaultFS", "file:///");
    conf.set("hadoop.tmp.dir", new File(work, "tmp").getAbsolutePath());
    // Our own addresses, all on loopback (MiniYARNCluster otherwise picks hostname:0).
    conf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_FIXED_PORTS, true);
    conf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_USE_RPC, true);
    conf.set(YarnConfiguration.RM_HOSTNAME, host);
    conf.set(YarnConfiguration.RM_SCHEDULER_ADDRESS, host + ":" + base);
    conf.set(YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, host + ":" + (base + 1));
    conf.set(YarnConfiguration.RM_ADDRESS, host + ":" + (base + 2));
    conf.set(YarnConfiguration.RM_ADMIN_ADDRESS, host + ":" + (base + 3));
    conf.set(YarnConfiguration.RM_WEBAPP_ADDRESS, host + ":" + (base + 58));
    conf.set(YarnConfiguration.RM_BIND_HOST, host);
    conf.set(YarnConfiguration.NM_BIND_HOST, host);
    conf.set(YarnConfiguration.NM_ADDRESS, host + ":0");
    conf.set(YarnConfiguration.NM_LOCALIZER_ADDRESS, host + ":0");
    conf.set(YarnConfiguration.NM_WEBAPP_ADDRESS, host + ":0");
    conf.set(YarnConfiguration.NM_COLLECTOR_SERVICE_ADDRESS, host + ":0");
    conf.set("yarn.nodemanager.hostname", host);
    // Room for a Spark AM, executors and a Livy session at once; no memory policing of JVMs.
    conf.setInt(YarnConfiguration.NM_PMEM_MB, Integer.parseInt(args[3]));
    conf.setInt(YarnConfiguration.YARN_MINICLUSTER_NM_PMEM_MB, Integer.parseInt(args[3]));
    conf.setInt(YarnConfiguration.NM_VCORES, Integer.parseInt(args[4]));
    conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 128);
    conf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, false);
    conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
    // The capacity scheduler (as on HDInsight) with its one "default" queue: no
    // capacity-scheduler.xml is on the classpath, so the queues are set here.
    conf.set("yarn.scheduler.capacity.root.queues", "default");
    conf.set("yarn.scheduler.capacity.root.default.capacity", "100");
    conf.set("yarn.scheduler.capacity.root.default.maximum-capacity", "100");
    conf.set("yarn.scheduler.capacity.maximum-am-resource-percent", "0.9");
    // A nearly full CI disk must not mark the only node unhealthy.
    conf.set("yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage", "99.9");
    // Finished applications' container logs go to a local folder, readable with `yarn logs`.
    conf.setBoolean(YarnConfiguration.LOG_AGGREGATION_ENABLED, true);
    conf.set(YarnConfiguration.NM_REMOTE_APP_LOG_DIR, new File(work, "app-logs").toURI().toString());
    conf.set(YarnConfiguration.NM_LOG_DIRS, new File(work, "nm-logs").getAbsolutePath());
    conf.set(YarnConfiguration.NM_LOCAL_DIRS, new File(work, "nm-local").getAbsolutePath());
    conf.set("yarn.log.server.url", "");
    conf.setInt(YarnConfiguration.RM_AM_MAX_ATTEMPTS, 1);

    MiniYARNCluster cluster = new MiniYARNCluster("amlexec-test-yarn", 1, 1, 1);
    cluster.init(conf);
    cluster.start();
    if (!cluster.waitForNodeManagersToConnect(60_000)) {
      System.err.println("MINIYARN FAILED: the NodeManager did not register within 60 s");
      cluster.stop();
      System.exit(1);
    }

    Configuration published = cluster.getConfig();
    writeXml(published, new File(confDir, "yarn-site.xml"));
    Configuration core = new Configuration(false);
    core.set("fs.defaultFS", "file:///");
    core.set("hadoop.tmp.dir", new File(work, "tmp").getAbsolutePath());
    writeXml(core, new File(confDir, "core-site.xml"));

    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  cluster.stop();
                  stopped.countDown();
                }));
    System.out.println(
        "MINIYARN READY rm="
            + published.get(YarnConfiguration.RM_ADDRESS)
            + " web=http://"
            + published.get(YarnConfiguration.RM_WEBAPP_ADDRESS));
    System.out.flush();
    stopped.await();
  }

  private static void writeXml(Configuration conf, File target) throws Exception {
    File tmp = new File(target.getPath() + ".tmp");
    try (OutputStream out = new FileOutputStream(tmp)) {
      conf.writeXml(out);
    }
    Files.move(tmp.toPath(), target.toPath(), StandardCopyOption.REPLACE_EXISTING);
  }
}
