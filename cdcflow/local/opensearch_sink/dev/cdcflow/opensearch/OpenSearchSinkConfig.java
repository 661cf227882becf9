package dev.cdcflow.opensearch;

import java.util.Map;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.types.Password;

/** The connector's settings. The password is of type PASSWORD, so Connect logs it as [hidden]. */
class OpenSearchSinkConfig extends AbstractConfig {
    static final String URL = "connection.url";
    static final String USERNAME = "connection.username";
    static final String PASSWORD = "connection.password";
    static final String REQUEST_TIMEOUT_MS = "request.timeout.ms";
    static final String RETRY_BACKOFF_MS = "retry.backoff.ms";
    static final String REFRESH = "refresh";

    static final ConfigDef DEFINITION = new ConfigDef()
        .define(URL, Type.STRING, ConfigDef.NO_DEFAULT_VALUE, Importance.HIGH,
            "Base URL of the OpenSearch REST API, e.g. https://search.internal:9200")
        .define(USERNAME, Type.STRING, null, Importance.MEDIUM, "HTTP basic auth user; none when empty")
        .define(PASSWORD, Type.PASSWORD, null, Importance.MEDIUM, "HTTP basic auth password")
        .define(REQUEST_TIMEOUT_MS, Type.INT, 30000, Importance.LOW, "Timeout of one bulk request")
        .define(RETRY_BACKOFF_MS, Type.LONG, 2000L, Importance.LOW,
            "How long Connect waits before it redelivers a batch OpenSearch did not take")
        .define(REFRESH, Type.STRING, "false", Importance.LOW,
            "The bulk API's refresh parameter: false, true or wait_for");

    OpenSearchSinkConfig(Map<String, String> props) {
        super(DEFINITION, props);
        String url = getString(URL);
        if (!url.startsWith("http://") && !url.startsWith("https://")) {
            throw new org.apache.kafka.common.config.ConfigException(URL, url, "must start with http:// or https://");
        }
        String refresh = getString(REFRESH);
        if (!refresh.equals("false") && !refresh.equals("true") && !refresh.equals("wait_for")) {
            throw new org.apache.kafka.common.config.ConfigException(REFRESH, refresh, "must be false, true or wait_for");
        }
    }

    String url() {
        String url = getString(URL);
        return url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
    }

    String username() {
        return getString(USERNAME);
    }

    String password() {
        Password password = getPassword(PASSWORD);
        return password == null ? null : password.value();
    }
}
