package dev.cdcflow.connect;

import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.Calendar;
import java.util.GregorianCalendar;
import java.util.TimeZone;

/**
 * Timestamps before the Gregorian calendar's start (1582-10-15) that a snapshot read, put back on the calendar
 * they left on.
 *
 * <p>PostgreSQL counts every timestamp on the proleptic Gregorian calendar. Debezium's streaming changes carry
 * that instant, but its snapshots (the initial one and incremental ones) read rows through the JDBC driver's
 * {@code java.sql.Timestamp}, which reads the text's fields on the Julian calendar before 1582-10-15:
 * '0001-01-01' arrived as '0001-12-30 BC' and '1582-10-04' as '1582-10-14'. The instant that left is the one
 * whose proleptic fields are the Julian fields of the instant sent. A timestamp in a record key is not
 * rewritten.
 */
final class HybridCalendar {
    static final long GREGORIAN_START_EPOCH_SECONDS = -12_219_292_800L;  // 1582-10-15T00:00:00Z

    private static final TimeZone UTC = TimeZone.getTimeZone("UTC");

    private HybridCalendar() {
    }

    /** The instant whose proleptic fields are the Julian fields of `epochMicros`, when that is before the cutover. */
    static long micros(long epochMicros) {
        long seconds = Math.floorDiv(epochMicros, 1_000_000L);
        if (seconds >= GREGORIAN_START_EPOCH_SECONDS) {
            return epochMicros;
        }
        return julianFieldsEpochSeconds(seconds) * 1_000_000L + Math.floorMod(epochMicros, 1_000_000L);
    }

    /** The same for epoch milliseconds (timestamp(0) to timestamp(3) travel as io.debezium.time.Timestamp). */
    static long millis(long epochMillis) {
        long seconds = Math.floorDiv(epochMillis, 1_000L);
        if (seconds >= GREGORIAN_START_EPOCH_SECONDS) {
            return epochMillis;
        }
        return julianFieldsEpochSeconds(seconds) * 1_000L + Math.floorMod(epochMillis, 1_000L);
    }

    /**
     * An ISO 8601 timestamp with offset (io.debezium.time.ZonedTimestamp), likewise; text that is not one
     * ('infinity') is returned as it is.
     */
    static String zoned(String text) {
        if (text.isEmpty() || !(Character.isDigit(text.charAt(0)) || text.charAt(0) == '-' || text.charAt(0) == '+')) {
            return text;
        }
        OffsetDateTime instant;
        try {
            instant = OffsetDateTime.parse(text, DateTimeFormatter.ISO_OFFSET_DATE_TIME);
        } catch (DateTimeParseException e) {
            return text;
        }
        long seconds = instant.toEpochSecond();
        if (seconds >= GREGORIAN_START_EPOCH_SECONDS) {
            return text;
        }
        LocalDateTime fields = LocalDateTime.ofEpochSecond(julianFieldsEpochSeconds(seconds), instant.getNano(),
                ZoneOffset.UTC);
        return fields.atOffset(ZoneOffset.UTC).format(DateTimeFormatter.ISO_OFFSET_DATE_TIME);
    }

    /** The epoch seconds, counted proleptically, of the fields the Julian calendar gives `epochSeconds` in UTC. */
    private static long julianFieldsEpochSeconds(long epochSeconds) {
        GregorianCalendar julian = new GregorianCalendar(UTC);
        julian.clear();
        julian.setTimeInMillis(epochSeconds * 1_000L);
        int yearOfEra = julian.get(Calendar.YEAR);
        int year = julian.get(Calendar.ERA) == GregorianCalendar.BC ? 1 - yearOfEra : yearOfEra;
        LocalDateTime fields = LocalDateTime.of(year, julian.get(Calendar.MONTH) + 1, julian.get(Calendar.DAY_OF_MONTH),
                julian.get(Calendar.HOUR_OF_DAY), julian.get(Calendar.MINUTE), julian.get(Calendar.SECOND));
        return fields.toEpochSecond(ZoneOffset.UTC);
    }
}
