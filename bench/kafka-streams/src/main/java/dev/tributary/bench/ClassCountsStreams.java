package dev.tributary.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Instant;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The Kafka Streams contender of the bench's streams scenario: the same aggregation as the
 * engine's bench view (bench/internal/class-counts.ts), per class key: bookings, cancellations,
 * net spots and the time of the last event applied, with exactly-once v2 and the default
 * RocksDB store (restored from its changelog topic when the state directory is gone).
 *
 * Configured by the environment: BOOTSTRAP_SERVERS, INPUT_TOPIC, OUTPUT_TOPIC, APPLICATION_ID,
 * STATE_DIR, and optionally COMMIT_INTERVAL_MS (Kafka Streams' default under exactly-once: 100)
 * and SESSION_TIMEOUT_MS (the consumer's; heartbeats at a tenth of it).
 * Prints "RUNNING" on stdout each time the instance reaches the RUNNING state.
 */
public final class ClassCountsStreams {
  private static final ObjectMapper JSON = new ObjectMapper();

  private ClassCountsStreams() {}

  /** Aggregate as "booked,cancelled,net,lastEventAtMs": small, and readable in the store. */
  static String fold(String aggregate, String eventJson) {
    String[] parts = aggregate.split(",", 4);
    long booked = Long.parseLong(parts[0]);
    long cancelled = Long.parseLong(parts[1]);
    long net = Long.parseLong(parts[2]);
    long lastEventAtMs;
    try {
      JsonNode event = JSON.readTree(eventJson);
      boolean isBooked = "booked".equals(event.path("type").asText());
      if (isBooked) booked++;
      else cancelled++;
      net += isBooked ? 1 : -1;
      lastEventAtMs = Instant.parse(event.path("at").asText()).toEpochMilli();
    } catch (Exception e) {
      throw new IllegalArgumentException("not a booking event: " + eventJson, e);
    }
    return booked + "," + cancelled + "," + net + "," + lastEventAtMs;
  }

  static String toJson(String aggregate) {
    String[] parts = aggregate.split(",", 4);
    return "{\"booked\":" + parts[0] + ",\"cancelled\":" + parts[1] + ",\"net\":" + parts[2] + ",\"lastEventAtMs\":" + parts[3] + "}";
  }

  private static String env(String name) {
    String value = System.getenv(name);
    if (value == null || value.isBlank()) {
      System.err.println("ClassCountsStreams: environment variable " + name + " is not set; start it through the bench (npm run bench with the streams scenario)");
      System.exit(2);
    }
    return value;
  }

  public static void main(String[] args) throws InterruptedException {
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, env("APPLICATION_ID"));
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, env("BOOTSTRAP_SERVERS"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.STATE_DIR_CONFIG, env("STATE_DIR"));
    // One broker: internal topics (the store's changelog) cannot have more replicas.
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    String commitInterval = System.getenv("COMMIT_INTERVAL_MS");
    if (commitInterval != null && !commitInterval.isBlank()) props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(commitInterval));
    String sessionTimeout = System.getenv("SESSION_TIMEOUT_MS");
    if (sessionTimeout != null && !sessionTimeout.isBlank()) {
      int ms = Integer.parseInt(sessionTimeout);
      props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), ms);
      props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), Math.max(100, ms / 10));
    }

    Serde<String> strings = Serdes.String();
    StreamsBuilder builder = new StreamsBuilder();
    builder
        .stream(env("INPUT_TOPIC"), Consumed.with(strings, strings))
        .groupByKey()
        .aggregate(
            () -> "0,0,0,0",
            (key, event, aggregate) -> fold(aggregate, event),
            Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("class-counts").withKeySerde(strings).withValueSerde(strings))
        .toStream()
        .mapValues(ClassCountsStreams::toJson)
        .to(env("OUTPUT_TOPIC"), Produced.with(strings, strings));

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener((next, previous) -> {
      if (next == KafkaStreams.State.RUNNING) System.out.println("RUNNING");
      if (next == KafkaStreams.State.ERROR || next == KafkaStreams.State.NOT_RUNNING) stopped.countDown();
    });
    streams.setUncaughtExceptionHandler(error -> {
      System.err.println("ClassCountsStreams: stream thread failed: " + error);
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      stopped.countDown();
    }));
    streams.start();
    stopped.await();
    System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
  }
}
