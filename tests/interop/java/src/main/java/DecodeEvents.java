import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.HexFormat;
import java.util.IdentityHashMap;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;

/**
 * Decodes single-object encoded Avro records the way a downstream team would: the schema comes from
 * the .avsc file alone (no generated classes), the decoder is Avro's own BinaryMessageDecoder.
 *
 * <p>Usage: java -cp AVRO_CLASSPATH DecodeEvents.java SCHEMA_DIR NAME=FILE...
 * where NAME is a schema file name without .avsc (transcript_event, dead_letter).
 *
 * <p>Prints one tab-separated line per argument, UTF-8:
 * {@code NAME=FILE <TAB> fingerprint <TAB> HEX} (the schema's fingerprint in wire order), then
 * {@code NAME=FILE <TAB> record <TAB> JSON} or {@code NAME=FILE <TAB> error <TAB> EXCEPTION_CLASS}.
 */
public class DecodeEvents {
  public static void main(String[] args) throws Exception {
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    Path schemaDir = Path.of(args[0]);
    for (int i = 1; i < args.length; i++) {
      String[] nameAndFile = args[i].split("=", 2);
      // One parser per file: the schemas each define io.fwv2.events.ObjectRef and WorkerRef.
      Schema schema = new Schema.Parser().parse(schemaDir.resolve(nameAndFile[0] + ".avsc").toFile());
      byte[] fingerprint = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
          .putLong(SchemaNormalization.parsingFingerprint64(schema)).array();
      out.println(args[i] + "\tfingerprint\t" + HexFormat.of().formatHex(fingerprint));
      BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(GenericData.get(), schema);
      try {
        GenericRecord record = decoder.decode(Files.readAllBytes(Path.of(nameAndFile[1])));
        out.println(args[i] + "\trecord\t" + toJson(record));
      } catch (Exception e) {
        out.println(args[i] + "\terror\t" + e.getClass().getName());
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
