package dev.cdcflow.opensearch;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.Collection;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes each batch with one _bulk request, in record order: `index` (a full upsert of the
 * document) for a row, `delete` for a tombstone, the document id being the record key.
 *
 * OpenSearch unreachable, 429 or 5xx: a RetriableException, so Connect redelivers the same
 * batch after retry.backoff.ms and the task stays RUNNING. Re-delivered records write the same
 * documents again. A document OpenSearch refuses (a mapping conflict, say) fails the task with
 * the index, id and reason; a delete of a document that is not there is not an error.
 *
 * Each topic's index is created before its first write, with dynamic mapping but no guessing of
 * dates or numbers inside strings: a text column stays text whatever it holds, and every value
 * reads back from _source as the row had it.
 */
public class OpenSearchSinkTask extends SinkTask {
    private static final Logger LOG = LoggerFactory.getLogger(OpenSearchSinkTask.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private OpenSearchSinkConfig config;
    private HttpClient http;
    private JsonConverter rows;
    private String authorization;
    private final Set<String> indices = new HashSet<>();

    @Override
    public String version() {
        return OpenSearchSinkConnector.VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        config = new OpenSearchSinkConfig(props);
        http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        rows = new JsonConverter();
        // NUMERIC: a Decimal is written as a JSON number with every digit, not as base64 bytes.
        rows.configure(Map.of("schemas.enable", "false", "decimal.format", "NUMERIC"), false);
        String user = config.username();
        if (user != null && !user.isEmpty()) {
            String pair = user + ":" + (config.password() == null ? "" : config.password());
            authorization = "Basic " + Base64.getEncoder().encodeToString(pair.getBytes(StandardCharsets.UTF_8));
        }
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        if (records.isEmpty()) {
            return;
        }
        for (SinkRecord record : records) {
            if (indices.add(record.topic())) {
                try {
                    ensureIndex(record.topic());
                } catch (RuntimeException error) {
                    indices.remove(record.topic());
                    throw error;
                }
            }
        }
        StringBuilder body = new StringBuilder();
        for (SinkRecord record : records) {
            ObjectNode target = JSON.createObjectNode();
            target.put("_index", record.topic());
            target.put("_id", documentId(record));
            ObjectNode action = JSON.createObjectNode();
            if (record.value() == null) {
                action.set("delete", target);
                body.append(action).append('\n');
            } else {
                action.set("index", target);
                byte[] document = rows.fromConnectData(record.topic(), record.valueSchema(), record.value());
                body.append(action).append('\n').append(new String(document, StandardCharsets.UTF_8)).append('\n');
            }
        }
        JsonNode result = bulk(body.toString());
        if (result.path("errors").asBoolean(false)) {
            checkItems(result.path("items"));
        }
    }

    private void ensureIndex(String index) {
        String body = "{\"mappings\":{\"dynamic\":true,\"date_detection\":false,\"numeric_detection\":false}}";
        HttpResponse<String> response = send(HttpRequest.newBuilder(URI.create(config.url() + "/" + index))
            .header("Content-Type", "application/json")
            .PUT(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8)), "create index " + index);
        int status = response.statusCode();
        if (status == 200 || (status == 400 && response.body().contains("resource_already_exists_exception"))) {
            return;
        }
        if (status == 429 || status >= 500) {
            throw retry("OpenSearch at " + config.url() + " answered " + status + " when asked to create index " + index);
        }
        throw new ConnectException("OpenSearch at " + config.url() + " refused to create index " + index + " (" + status
            + "): " + abbreviate(response.body()));
    }

    private HttpResponse<String> send(HttpRequest.Builder request, String what) {
        request.timeout(Duration.ofMillis(config.getInt(OpenSearchSinkConfig.REQUEST_TIMEOUT_MS)));
        if (authorization != null) {
            request.header("Authorization", authorization);
        }
        try {
            return http.send(request.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        } catch (IOException error) {
            throw retry("OpenSearch at " + config.url() + " did not answer (" + what + "): " + error.getClass().getSimpleName());
        } catch (InterruptedException error) {
            Thread.currentThread().interrupt();
            throw new ConnectException("interrupted while writing to OpenSearch");
        }
    }

    private JsonNode bulk(String body) {
        HttpResponse<String> response = send(
            HttpRequest.newBuilder(URI.create(config.url() + "/_bulk?refresh=" + config.getString(OpenSearchSinkConfig.REFRESH)))
                .header("Content-Type", "application/x-ndjson")
                .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8)),
            "bulk");
        int status = response.statusCode();
        if (status == 429 || status >= 500) {
            throw retry("OpenSearch at " + config.url() + " answered " + status + " to a bulk request");
        }
        if (status != 200) {
            throw new ConnectException("OpenSearch at " + config.url() + " refused a bulk request with " + status + ": "
                + abbreviate(response.body()));
        }
        try {
            return JSON.readTree(response.body());
        } catch (IOException error) {
            throw new ConnectException("OpenSearch's bulk response is not JSON: " + abbreviate(response.body()));
        }
    }

    private void checkItems(JsonNode items) {
        boolean retriable = false;
        for (JsonNode item : items) {
            Map.Entry<String, JsonNode> entry = item.fields().next();
            JsonNode outcome = entry.getValue();
            int status = outcome.path("status").asInt();
            if (status < 300 || (entry.getKey().equals("delete") && status == 404)) {
                continue;
            }
            if (status == 429 || status >= 500) {
                retriable = true;
                continue;
            }
            JsonNode error = outcome.path("error");
            throw new ConnectException("OpenSearch refused to " + entry.getKey() + " document " + outcome.path("_id").asText()
                + " of index " + outcome.path("_index").asText() + ": " + error.path("type").asText() + ": "
                + abbreviate(error.path("reason").asText()));
        }
        if (retriable) {
            // The whole batch goes again: index and delete by id are idempotent.
            throw retry("OpenSearch was too busy to take part of a bulk request");
        }
    }

    private RetriableException retry(String message) {
        LOG.warn("{}; the batch is redelivered in {} ms", message, config.getLong(OpenSearchSinkConfig.RETRY_BACKOFF_MS));
        context.timeout(config.getLong(OpenSearchSinkConfig.RETRY_BACKOFF_MS));
        return new RetriableException(message);
    }

    /** The record key as a document id: a one-column key's value, else the key's JSON text. */
    static String documentId(SinkRecord record) {
        Object key = record.key();
        if (key == null) {
            throw new ConnectException("a record of topic " + record.topic() + " has no key: the table needs a primary key"
                + " (the key is the document id)");
        }
        if (key instanceof Struct) {
            Struct struct = (Struct) key;
            if (struct.schema().fields().size() == 1) {
                Object only = struct.get(struct.schema().fields().get(0));
                if (only != null && !(only instanceof Struct) && !(only instanceof byte[])) {
                    return only.toString();
                }
            }
            ObjectNode fields = JSON.createObjectNode();
            for (Field field : struct.schema().fields()) {
                fields.putPOJO(field.name(), struct.get(field));
            }
            return fields.toString();
        }
        return key.toString();
    }

    private static String abbreviate(String text) {
        return text.length() > 300 ? text.substring(0, 300) + "..." : text;
    }

    @Override
    public void stop() {
    }
}
