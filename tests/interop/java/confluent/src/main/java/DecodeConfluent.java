import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.IdentityHashMap;
import java.util.Map;

import io.apicurio.registry.serde.avro.AvroKafkaDeserializer;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;

/**
 * Reads Confluent-framed Avro values (00, a 4-byte big-endian schema id, the body) the way a downstream
 * Java team's Kafka consumer would: a stock registry-aware value deserializer, here Apicurio's
 * AvroKafkaDeserializer in its Confluent mode, which fetches the writer schema by the id in each value.
 * It is given no schema file: everything it knows comes from the registry.
 *
 * <p>Usage: java -cp CLASSPATH DecodeConfluent.java REGISTRY_URL TOPIC=FILE...
 * where REGISTRY_URL is Apicurio's native API (http://HOST:PORT/apis/registry/v2) and TOPIC the topic
 * the value was read from (the deserializer is handed it, as a consumer would hand it).
 *
 * <p>Prints one tab-separated line per argument, UTF-8: {@code TOPIC=FILE <TAB> schema <TAB> FULL_NAME}
 * and {@code TOPIC=FILE <TAB> record <TAB> JSON}, or {@code TOPIC=FILE <TAB> error <TAB> EXCEPTION_CLASS}.
 */
public class DecodeConfluent {
  public static void main(String[] args) throws Exception {
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    // The settings our Kafka Connect converter uses (deploy/connect/transcripts-typed.json).
    Map<String, Object> config = Map.of(
        "apicurio.registry.url", args[0],
        "apicurio.registry.as-confluent", "true",
        "apicurio.registry.use-id", "contentId",
        "apicurio.registry.headers.enabled", "false");
    try (AvroKafkaDeserializer<Object> deserializer = new AvroKafkaDeserializer<>()) {
      deserializer.configure(config, false);
      for (int i = 1; i < args.length; i++) {
        String[] topicAndFile = args[i].split("=", 2);
        try {
          Object value = deserializer.deserialize(topicAndFile[0], Files.readAllBytes(Path.of(topicAndFile[1])));
          GenericRecord record = (GenericRecord) value;
          out.println(args[i] + "\tschema\t" + record.getSchema().getFullName());
          out.println(args[i] + "\trecord\t" + toJson(record));
        } catch (Exception e) {
          out.println(args[i] + "\terror\t" + e.getClass().getName());
        }
      }
    }
  }

  /** GenericData's JSON rendering, except bytes, which it would print as text: base64 here. */
  private static String toJson(GenericRecord record) {
    GenericData model = new GenericData() {
      @Override
      protected void toString(Object datum, StringBuilder buffer, IdentityHashMap<Object, Object> seen) {
        if (datum instanceof ByteBuffer) {
          ByteBuffer bytes = ((ByteBuffer) datum).duplicate();
          byte[] raw = new byte[bytes.remaining()];
          bytes.get(raw);
          buffer.append('"').append(Base64.getEncoder().encodeToString(raw)).append('"');
        } else {
          super.toString(datum, buffer, seen);
        }
      }
    };
    return model.toString(record);
  }
}
