import com.amazonaws.services.dynamodbv2.local.server.LocalDynamoDBRequestHandler;
import com.amazonaws.services.dynamodbv2.local.server.LocalDynamoDBServerHandler;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.ContextHandler;
import org.eclipse.jetty.server.handler.ContextHandlerCollection;

/**
 * Runs DynamoDB Local on one address and port, keeping its tables in a folder.
 *
 * DynamoDB Local's own ServerRunner has no bind-address option and listens on every
 * interface; this wires the same request handler into a Jetty server whose only
 * connector is bound to the given host. Telemetry is never configured, so nothing
 * is sent anywhere.
 *
 * Usage: LoopbackDynamoDBLocal HOST PORT DB_DIR
 */
public final class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: LoopbackDynamoDBLocal HOST PORT DB_DIR");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String dbDir = args[2];

        // (port 0: no separate port for the request handler; on disk under dbDir, so the
        //  tables outlive a restart like every other service's data; one shared database
        //  for every credential and region; no artificial delays)
        LocalDynamoDBRequestHandler requests = new LocalDynamoDBRequestHandler(0, false, dbDir, true, false);
        LocalDynamoDBServerHandler handler = new LocalDynamoDBServerHandler(requests, "*");

        Server server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost(host);
        connector.setPort(port);
        server.addConnector(connector);
        ContextHandler context = new ContextHandler();
        context.setHandler(handler);
        server.setHandler(new ContextHandlerCollection(context));
        server.start();
        System.out.println("DynamoDB Local listening on " + host + ":" + port);
        server.join();
    }
}
