import java.lang.reflect.Field;
import java.util.Arrays;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/**
 * Starts DynamoDB Local the way its own main class does, but listening on one address only.
 * DynamoDB Local has no bind-address option: it creates its Jetty server with a port alone, and
 * Jetty then listens on every interface. The connector takes a host until the server starts.
 *
 * <p>Usage: {@code java -cp <this class>:DynamoDBLocal.jar:DynamoDBLocal_lib/* LoopbackDynamoDBLocal
 * <host> <DynamoDB Local options>}. Compiled once by local/internal/dynamodb/dynamodb-local.ts.
 */
public final class LoopbackDynamoDBLocal {
  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: LoopbackDynamoDBLocal <host> [DynamoDB Local options]");
      System.exit(2);
    }
    String host = args[0];
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(Arrays.copyOfRange(args, 1, args.length));
    Field serverField = DynamoDBProxyServer.class.getDeclaredField("server");
    serverField.setAccessible(true);
    Server server = (Server) serverField.get(proxy);
    for (Connector connector : server.getConnectors()) {
      ((ServerConnector) connector).setHost(host);
    }
    proxy.start();
  }
}
