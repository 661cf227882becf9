package dev.cdcflow.connect;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.json.JsonConverter;

/**
 * Kafka's JsonConverter, with the special numbers that it and Debezium would change put back.
 *
 * <ul>
 * <li>A double or real NaN, Infinity or -Infinity is written by JsonConverter as the JSON string
 *     "NaN", "Infinity" or "-Infinity" (JSON has no such numbers), and read back as 0.0: this
 *     converter reads those strings as the special values they stand for.</li>
 * <li>A numeric NaN, Infinity or -Infinity, which Debezium's decimal.handling.mode=string sends as
 *     "NAN", "POSITIVE_INFINITY" or "NEGATIVE_INFINITY", becomes PostgreSQL's spelling ("NaN",
 *     "Infinity", "-Infinity"), for string fields whose propagated source column type is NUMERIC or
 *     DECIMAL (column.propagate.source.type).</li>
 * <li>A timestamp before 1582-10-15 that a snapshot read (op "r") is put back on the calendar it left on
 *     ({@link HybridCalendar}).</li>
 * </ul>
 *
 * Everything else is JsonConverter's work: a record that holds none of these spellings is returned
 * as JsonConverter made it, without a second parse.
 */
public class ExactJsonConverter extends JsonConverter {
    static final String SOURCE_COLUMN_TYPE = "__debezium.source.column.type";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] MARKERS = {
        "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"NAN\"", "\"POSITIVE_INFINITY\"", "\"NEGATIVE_INFINITY\"",
    };
    private static final Map<String, String> NUMERIC_SPELLING = Map.of(
            "NAN", "NaN", "POSITIVE_INFINITY", "Infinity", "NEGATIVE_INFINITY", "-Infinity");

    private static final String MICRO_TIMESTAMP = "io.debezium.time.MicroTimestamp";
    private static final String MILLI_TIMESTAMP = "io.debezium.time.Timestamp";
    private static final String ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp";

    private boolean schemasEnabled = true;
    // JsonConverter hands out one Schema object per distinct schema, so the last one's answer is usually reused.
    private Schema lastSchema;
    private boolean lastSchemaHasTimestamps;

    @Override
    public void configure(Map<String, ?> configs, boolean isKey) {
        super.configure(configs, isKey);
        Object enabled = configs.get("schemas.enable");
        schemasEnabled = enabled == null || Boolean.parseBoolean(enabled.toString());
    }

    @Override
    public SchemaAndValue toConnectData(String topic, byte[] value) {
        SchemaAndValue converted = super.toConnectData(topic, value);
        if (value == null || converted.schema() == null || converted.value() == null) {
            return converted;
        }
        Schema schema = converted.schema();
        Object restored = converted.value();
        if (holdsMarker(value)) {
            JsonNode json;
            try {
                json = JSON.readTree(value);
            } catch (java.io.IOException e) {
                throw new DataException("record of topic " + topic + " could not be read again as JSON", e);
            }
            restored = restore(schema, restored, schemasEnabled ? json.get("payload") : json);
        }
        if (hasTimestamps(schema) && isSnapshotRead(schema, restored)) {
            restored = restoreEarlyTimestamps(schema, restored);
        }
        return restored == converted.value() ? converted : new SchemaAndValue(schema, restored);
    }

    /** Whether `value` is a change event of a row read by a snapshot (op "r"), initial or incremental. */
    private static boolean isSnapshotRead(Schema schema, Object value) {
        return schema.type() == Schema.Type.STRUCT && schema.field("op") != null
                && "r".equals(((Struct) value).get("op"));
    }

    private boolean hasTimestamps(Schema schema) {
        if (schema != lastSchema) {
            lastSchema = schema;
            lastSchemaHasTimestamps = containsTimestamp(schema);
        }
        return lastSchemaHasTimestamps;
    }

    private static boolean containsTimestamp(Schema schema) {
        if (schema.type() == Schema.Type.STRUCT) {
            for (Field field : schema.fields()) {
                if (containsTimestamp(field.schema())) {
                    return true;
                }
            }
            return false;
        }
        String name = schema.name();
        return MICRO_TIMESTAMP.equals(name) || MILLI_TIMESTAMP.equals(name) || ZONED_TIMESTAMP.equals(name);
    }

    /** `value` of `schema` with each timestamp field before 1582-10-15 in the form the JDBC sink reads right. */
    static Object restoreEarlyTimestamps(Schema schema, Object value) {
        if (value == null) {
            return null;
        }
        if (schema.type() == Schema.Type.STRUCT) {
            Struct struct = (Struct) value;
            for (Field field : schema.fields()) {
                Object fieldValue = struct.get(field);
                Object restored = restoreEarlyTimestamps(field.schema(), fieldValue);
                if (restored != fieldValue) {
                    struct.put(field, restored);
                }
            }
            return struct;
        }
        String name = schema.name();
        if (MICRO_TIMESTAMP.equals(name)) {
            long micros = (Long) value;
            long restored = HybridCalendar.micros(micros);
            return restored == micros ? value : (Object) restored;
        }
        if (MILLI_TIMESTAMP.equals(name)) {
            long millis = (Long) value;
            long restored = HybridCalendar.millis(millis);
            return restored == millis ? value : (Object) restored;
        }
        if (ZONED_TIMESTAMP.equals(name)) {
            String text = (String) value;
            String restored = HybridCalendar.zoned(text);
            return restored.equals(text) ? value : restored;
        }
        return value;
    }

    private static boolean holdsMarker(byte[] value) {
        String text = new String(value, StandardCharsets.UTF_8);
        for (String marker : MARKERS) {
            if (text.contains(marker)) {
                return true;
            }
        }
        return false;
    }

    /** `value` of `schema`, with the special numbers its JSON `json` spelled put back. */
    @SuppressWarnings("unchecked")
    static Object restore(Schema schema, Object value, JsonNode json) {
        if (value == null || json == null || json.isNull()) {
            return value;
        }
        switch (schema.type()) {
            case FLOAT64:
                return json.isTextual() ? specialDouble(json.asText()) : value;
            case FLOAT32:
                return json.isTextual() ? (Object) (float) (double) specialDouble(json.asText()) : value;
            case STRING:
                return isNumericColumn(schema) ? NUMERIC_SPELLING.getOrDefault((String) value, (String) value) : value;
            case STRUCT:
                Struct struct = (Struct) value;
                for (Field field : schema.fields()) {
                    Object fieldValue = struct.get(field);
                    Object restored = restore(field.schema(), fieldValue, json.get(field.name()));
                    if (restored != fieldValue) {
                        struct.put(field, restored);
                    }
                }
                return struct;
            case ARRAY:
                List<Object> items = (List<Object>) value;
                for (int i = 0; i < items.size() && i < json.size(); i++) {
                    Object item = items.get(i);
                    Object restored = restore(schema.valueSchema(), item, json.get(i));
                    if (restored != item) {
                        items.set(i, restored);
                    }
                }
                return items;
            default:
                return value;
        }
    }

    private static Double specialDouble(String spelled) {
        switch (spelled) {
            case "NaN":
                return Double.NaN;
            case "Infinity":
                return Double.POSITIVE_INFINITY;
            case "-Infinity":
                return Double.NEGATIVE_INFINITY;
            default:
                throw new DataException("a floating-point field holds the text '" + spelled + "'");
        }
    }

    private static boolean isNumericColumn(Schema schema) {
        Map<String, String> parameters = schema.parameters();
        if (parameters == null) {
            return false;
        }
        String type = parameters.get(SOURCE_COLUMN_TYPE);
        return "NUMERIC".equalsIgnoreCase(type) || "DECIMAL".equalsIgnoreCase(type);
    }
}
