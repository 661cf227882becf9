package dev.cdcflow.secrets;

import java.net.URI;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.kafka.common.config.ConfigData;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.provider.ConfigProvider;

import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.secretsmanager.SecretsManagerClient;
import software.amazon.awssdk.services.secretsmanager.SecretsManagerClientBuilder;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueRequest;
import software.amazon.awssdk.services.secretsmanager.model.ResourceNotFoundException;
import software.amazon.awssdk.services.secretsmanager.model.SecretsManagerException;

/**
 * Resolves `${secretsmanager:<secret name>:<key>}` in connector configs from AWS Secrets Manager.
 *
 * The secret's value is a JSON object; `<key>` is one of its fields (`password`, `username`).
 * The worker resolves references each time it starts a connector or task, so the config
 * stored in Connect's config topic and shown by its REST API holds only the reference.
 *
 * Worker parameters (`config.providers.secretsmanager.param.<name>`):
 *   region    the AWS region (default: the SDK's region resolution)
 *   endpoint  an endpoint override, for a local Secrets Manager (default: the region's endpoint)
 *   ttl.ms    how long a resolved value is good for; when set, Connect restarts the connector
 *             after that time (config.action.reload=restart), which picks up a rotated value
 * Credentials come from the SDK's default chain (environment, system properties, profile,
 * container or instance role): none are ever written into the worker's properties.
 *
 * Errors name the secret and the key, never a value. Those that another try cannot mend (no such
 * secret, access denied, no such key, not JSON) end with UNRESOLVABLE, which cdcflow's Connect
 * client reads as a permanent config error; throttling and server errors do not.
 */
public class SecretsManagerConfigProvider implements ConfigProvider {
    static final String REGION = "region";
    static final String ENDPOINT = "endpoint";
    static final String TTL_MS = "ttl.ms";
    static final String UNRESOLVABLE = ": the secret reference cannot be resolved";

    private static final ObjectMapper JSON = new ObjectMapper();

    private SecretsManagerClient client;
    private Long ttlMs;

    @Override
    public void configure(Map<String, ?> configs) {
        SecretsManagerClientBuilder builder = SecretsManagerClient.builder()
                .httpClient(UrlConnectionHttpClient.create())
                .credentialsProvider(DefaultCredentialsProvider.builder().build());
        Object region = configs.get(REGION);
        if (region != null && !region.toString().isEmpty()) {
            builder.region(Region.of(region.toString()));
        }
        Object endpoint = configs.get(ENDPOINT);
        if (endpoint != null && !endpoint.toString().isEmpty()) {
            try {
                builder.endpointOverride(URI.create(endpoint.toString()));
            } catch (IllegalArgumentException error) {
                throw new ConfigException(ENDPOINT, endpoint, "not a URI: " + error.getMessage());
            }
        }
        Object ttl = configs.get(TTL_MS);
        if (ttl != null && !ttl.toString().isEmpty()) {
            try {
                ttlMs = Long.parseLong(ttl.toString());
            } catch (NumberFormatException error) {
                throw new ConfigException(TTL_MS, ttl, "not a number of milliseconds");
            }
        }
        client = builder.build();
    }

    /** Every field of the secret at `path`. */
    @Override
    public ConfigData get(String path) {
        return new ConfigData(fields(path, null), ttlMs);
    }

    /** The fields `keys` of the secret at `path`; a key the secret lacks is an error naming it. */
    @Override
    public ConfigData get(String path, Set<String> keys) {
        return new ConfigData(fields(path, keys), ttlMs);
    }

    private Map<String, String> fields(String secretName, Set<String> keys) {
        if (secretName == null || secretName.isEmpty()) {
            throw new ConfigException("a secretsmanager reference names no secret (${secretsmanager:<name>:<key>})"
                    + UNRESOLVABLE);
        }
        String secretString;
        try {
            secretString = client.getSecretValue(GetSecretValueRequest.builder().secretId(secretName).build())
                    .secretString();
        } catch (ResourceNotFoundException error) {
            throw new ConfigException("secret " + secretName + " does not exist in Secrets Manager" + UNRESOLVABLE);
        } catch (SecretsManagerException error) {
            String code = error.awsErrorDetails() == null ? "" : error.awsErrorDetails().errorCode();
            boolean lasting = error.statusCode() < 500 && !error.isThrottlingException();
            throw new ConfigException("secret " + secretName + " could not be read from Secrets Manager (" + code
                    + ", HTTP " + error.statusCode() + ")" + (lasting ? UNRESOLVABLE : ""));
        }
        JsonNode document;
        try {
            document = secretString == null ? null : JSON.readTree(secretString);
        } catch (Exception error) {
            // Not chained: the parser's message may quote the secret's text.
            document = null;
        }
        if (document == null || !document.isObject()) {
            throw new ConfigException("secret " + secretName + " is not a JSON object" + UNRESOLVABLE);
        }
        Map<String, String> values = new HashMap<>();
        if (keys == null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = document.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> field = it.next();
                values.put(field.getKey(), field.getValue().asText());
            }
            return values;
        }
        for (String key : keys) {
            JsonNode value = document.get(key);
            if (value == null || value.isNull()) {
                throw new ConfigException("secret " + secretName + " has no key " + key + UNRESOLVABLE);
            }
            values.put(key, value.asText());
        }
        return values;
    }

    @Override
    public void close() {
        if (client != null) {
            client.close();
        }
    }
}
