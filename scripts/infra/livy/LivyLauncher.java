// Starts the Apache Livy server of the tests (scripts/infra/spark.sh, ensure_livy) over a Spark 3.x.
//
// Why this exists: the newest Livy on Maven Central is 0.7.1-incubating (0.8.0 and 0.9.0 were never
// published there), and its server refuses any Spark >= 3.0 at start-up with a version gate
// (LivySparkUtils.MAX_VERSION = (3, 0): "Unsupported Spark version (3,5)"). The gate is only a
// guard: batches are a plain spark-submit of the SPARK_HOME given, which Spark 3.5 runs. So this
// main raises MAX_VERSION to (4, 0) and then runs Livy's own LivyServer.main, unchanged otherwise.
// Everything else (REST API, batch state machine, log capture, DELETE) is Livy's own code.
//
// usage: java -cp "LIVY_HOME/jars/*:CONF_DIR:CLASSES" LivyLauncher
import java.lang.reflect.Field;

public final class LivyLauncher {
  private LivyLauncher() {}

  public static void main(String[] args) throws Exception {
    Class<?> utils = Class.forName("org.apache.livy.utils.LivySparkUtils$");
    Object module = utils.getField("MODULE$").get(null);
    Field max = utils.getDeclaredField("MAX_VERSION");
    max.setAccessible(true);
    Object four = Class.forName("scala.Tuple2$mcII$sp")
        .getConstructor(int.class, int.class)
        .newInstance(4, 0);
    max.set(module, four);
    Class.forName("org.apache.livy.server.LivyServer")
        .getMethod("main", String[].class)
        .invoke(null, (Object) args);
  }
}
