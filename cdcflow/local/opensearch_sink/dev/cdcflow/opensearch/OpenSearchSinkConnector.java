package dev.cdcflow.opensearch;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;

/**
 * Keeps one OpenSearch index per topic equal to the table behind it: a record upserts the
 * document whose id is the record key, a tombstone deletes it.
 *
 * Records are expected flattened to the row (Debezium's ExtractNewRecordState with
 * delete.tombstone.handling.mode=tombstone), keyed by the table's primary key.
 */
public class OpenSearchSinkConnector extends SinkConnector {
    static final String VERSION = "1.0.0";

    private Map<String, String> settings;

    @Override
    public String version() {
        return VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        // Parsing here makes a bad config fail the PUT, not the task later.
        new OpenSearchSinkConfig(props);
        settings = props;
    }

    @Override
    public Class<? extends Task> taskClass() {
        return OpenSearchSinkTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        List<Map<String, String>> configs = new ArrayList<>();
        for (int i = 0; i < maxTasks; i++) {
            configs.add(settings);
        }
        return configs;
    }

    @Override
    public void stop() {
    }

    @Override
    public ConfigDef config() {
        return OpenSearchSinkConfig.DEFINITION;
    }
}
