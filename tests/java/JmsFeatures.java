// The JMS features a program on ActiveMQ's own client (Debian's libactivemq-java)
// relies on, run by tests/python/test_openwire_features.py against a Hawser
// broker. Prints one line per check and exits 1 on the first failure; every
// receive has a timeout.
//
//   java -cp "$CP:classes" JmsFeatures <broker url> <check>
//
// Checks:
//   types            every message type (text, bytes, map, stream, object, plain
//                    Message) with its body and typed properties, sent to a queue
//                    and received by another connection exactly as sent
//   types-send       the same messages, persistent, then a persistent and a
//                    non-persistent message to features.np (a restart follows)
//   types-receive    (after the restart) the messages of types-send, exactly as
//                    sent, and of features.np only the persistent one
//   ack-auto         AUTO_ACKNOWLEDGE with receive() and with a MessageListener: what
//                    was received is gone; what a closed consumer only had
//                    prefetched comes again as a first delivery (not redelivered)
//   ack-client       CLIENT_ACKNOWLEDGE: acknowledging a later message acknowledges
//                    the earlier ones; what was not acknowledged comes back
//                    redelivered, after a close and after Session.recover()
//   ack-dups-ok      DUPS_OK_ACKNOWLEDGE: everything received is gone after the close
//   ack-individual   ActiveMQ's INDIVIDUAL_ACKNOWLEDGE (4): only the messages
//                    acknowledged are gone
//   transactions     SESSION_TRANSACTED: commit publishes, rollback discards sends
//                    and redelivers what was received (JMSRedelivered,
//                    JMSXDeliveryCount), a committed receive is gone
//   selectors-queue  selectors on properties and JMS headers (JMSPriority, JMSType,
//                    JMSCorrelationID), each consumer taking only what matches
//   selectors-topic  topic subscribers with selectors each get what matches
//   durable          a durable subscriber keeps messages while offline (with a
//                    selector too); unsubscribe deletes the subscription; an
//                    active subscription cannot be deleted
//   durable-offline  subscribes durably, goes offline, and the messages for it are
//                    published (a restart follows)
//   durable-receive  (after the restart) the subscriber gets them all, then unsubscribes
//   durable-gone     (after another restart) the subscription stays deleted
//   wildcards        topic subscribers on PRICE.> and PRICE.*.X get what matches,
//                    each message with its own destination
//   priority         a queue's backlog comes highest priority first, in order within one
//   expiry           a message whose time to live passed is not delivered (even to a
//                    client that does not check expiry itself); persistent, it is in
//                    ActiveMQ.DLQ
//   dlq              a consumer that keeps rolling back (transacted, and with
//                    Session.recover()): after the client's maximumRedeliveries (2)
//                    the message is in ActiveMQ.DLQ with its original destination
//   non-persistent   NON_PERSISTENT messages to a queue and a topic arrive as such

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Enumeration;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Destination;
import javax.jms.JMSException;
import javax.jms.MapMessage;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageEOFException;
import javax.jms.MessageProducer;
import javax.jms.ObjectMessage;
import javax.jms.Queue;
import javax.jms.Session;
import javax.jms.StreamMessage;
import javax.jms.TextMessage;
import javax.jms.Topic;
import javax.jms.TopicSubscriber;

import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.ActiveMQSession;
import org.apache.activemq.RedeliveryPolicy;
import org.apache.activemq.command.ActiveMQMessage;

public class JmsFeatures {
    static final long WAIT_MS = 5000;
    static final long NOTHING_MS = 500;

    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL " + what);
            System.exit(1);
        }
        System.out.println("ok " + what);
    }

    static ActiveMQConnectionFactory factory(String url) {
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        // The client (not the broker) deserializes ObjectMessage bodies, and
        // only classes of trusted packages; this program's Order is in the
        // unnamed package, so it trusts them all, as ActiveMQ users do.
        f.setTrustAllPackages(true);
        return f;
    }

    static Connection connect(String url) throws JMSException {
        Connection c = factory(url).createConnection();
        c.start();
        return c;
    }

    static Connection connect(String url, String clientId) throws JMSException {
        Connection c = factory(url).createConnection();
        c.setClientID(clientId);
        c.start();
        return c;
    }

    static String text(Message m) throws JMSException {
        return m instanceof TextMessage ? ((TextMessage) m).getText() : String.valueOf(m);
    }

    /** Everything a consumer gets until nothing comes for NOTHING_MS, as text. */
    static List<String> drain(MessageConsumer consumer) throws JMSException {
        return drain(consumer, WAIT_MS);
    }

    /** The same, waiting up to firstWaitMs for the first message. */
    static List<String> drain(MessageConsumer consumer, long firstWaitMs) throws JMSException {
        List<String> got = new ArrayList<>();
        for (Message m = consumer.receive(firstWaitMs); m != null; m = consumer.receive(NOTHING_MS)) {
            got.add(text(m));
            if (got.size() > 1000) {
                break;
            }
        }
        return got;
    }

    /** What a fresh connection finds on a queue (auto acknowledged: taken). */
    static List<String> drainQueue(String url, String queue) throws JMSException {
        return drainQueue(url, queue, WAIT_MS);
    }

    /**
     * What a fresh connection finds on a queue that should be empty: a
     * consumer of a queue that holds messages gets them at once.
     */
    static List<String> leftOn(String url, String queue) throws JMSException {
        return drainQueue(url, queue, NOTHING_MS);
    }

    static List<String> drainQueue(String url, String queue, long firstWaitMs) throws JMSException {
        Connection c = connect(url);
        try {
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            return drain(s.createConsumer(s.createQueue(queue)), firstWaitMs);
        } finally {
            c.close();
        }
    }

    static void sendTexts(String url, String queue, String... bodies) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer p = s.createProducer(s.createQueue(queue));
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        for (String b : bodies) {
            p.send(s.createTextMessage(b));
        }
        c.close();
    }

    static String kind(Message m) {
        return m == null ? "nothing" : m.getClass().getSimpleName();
    }

    static String codePoints(Object o) {
        if (!(o instanceof String)) {
            return String.valueOf(o);
        }
        StringBuilder b = new StringBuilder();
        ((String) o).codePoints().forEach(c -> b.append(Integer.toHexString(c)).append(' '));
        return b.toString();
    }

    static int deliveryCount(Message m) throws JMSException {
        return m.getIntProperty("JMSXDeliveryCount");
    }

    // ------------------------------------------------------------------
    // Message types
    // ------------------------------------------------------------------

    /** A Serializable class of this program, which only the client deserializes. */
    public static final class Order implements Serializable {
        private static final long serialVersionUID = 1L;
        final String id;
        final int quantity;
        final double price;
        final List<String> lines;
        final Map<String, Integer> stock;
        final byte[] signature;

        Order(String id, int quantity, double price, List<String> lines, Map<String, Integer> stock,
                byte[] signature) {
            this.id = id;
            this.quantity = quantity;
            this.price = price;
            this.lines = lines;
            this.stock = stock;
            this.signature = signature;
        }

        @Override
        public boolean equals(Object o) {
            if (!(o instanceof Order)) {
                return false;
            }
            Order other = (Order) o;
            return id.equals(other.id) && quantity == other.quantity && price == other.price
                    && lines.equals(other.lines) && stock.equals(other.stock)
                    && Arrays.equals(signature, other.signature);
        }

        @Override
        public int hashCode() {
            return Objects.hash(id, quantity);
        }

        @Override
        public String toString() {
            return "Order(" + id + ", " + quantity + ", " + price + ", " + lines + ", " + stock + ")";
        }
    }

    static Order order() {
        Map<String, Integer> stock = new LinkedHashMap<>();
        stock.put("bolts", 120);
        stock.put("nuts", 0);
        return new Order("order-7", 3, 19.99, new ArrayList<>(List.of("bolt", "nut", "wäsher")), stock,
                new byte[] {0, (byte) 0xff, 0x7f, (byte) 0x80});
    }

    static final String UNICODE = "héllo wörld ✓ — 日本語 𝄞 and a NUL \u0000 in the middle";

    // ActiveMQ's client writes the strings of a map body and of properties as
    // modified UTF-8 and reads them as standard UTF-8: a NUL or a character
    // beyond the BMP does not survive its own round trip (whatever the broker).
    static final String MAP_TEXT = "héllo wörld ✓ — 日本語";

    static String bigText() {
        StringBuilder b = new StringBuilder();
        for (int i = 0; b.length() < 200_000; i++) {
            b.append(i).append(i % 7 == 0 ? " ü€𝄞 " : " ");
        }
        return b.toString();
    }

    static byte[] allBytes() {
        byte[] b = new byte[3 * 256];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) i;
        }
        return b;
    }

    /** What the BytesMessage holds, as java.io.DataOutputStream writes it (as JMS says). */
    static byte[] bytesBody() {
        try {
            java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
            java.io.DataOutputStream out = new java.io.DataOutputStream(buf);
            out.writeBoolean(true);
            out.writeByte(-5);
            out.writeShort(-300);
            out.writeChar('€');
            out.writeInt(0x12345678);
            out.writeLong(-1234567890123L);
            out.writeFloat(1.25f);
            out.writeDouble(-Math.PI);
            out.writeUTF(UNICODE);
            out.write(allBytes());
            out.flush();
            return buf.toByteArray();
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    static final String[] TEXTS = {"plain ascii", UNICODE, "", null, bigText()};

    static final byte[] MAP_BYTES = {0, 1, (byte) 0xfe, (byte) 0xff};

    /** The stream's values in the order written, with their Java types. */
    static List<Object> streamValues() {
        return Arrays.asList(false, (byte) -7, (short) 31000, 'ß', Integer.MIN_VALUE, Long.MAX_VALUE,
                2.5f, Math.E, "ströme ✓", null, "");
    }

    /** Sends one message of every type to `d` (each numbered by JMSCorrelationID). */
    static int sendTypes(Session s, Destination d, int deliveryMode) throws JMSException {
        MessageProducer p = s.createProducer(d);
        p.setDeliveryMode(deliveryMode);
        List<Message> out = new ArrayList<>();
        for (String t : TEXTS) {
            out.add(t == null ? s.createTextMessage() : s.createTextMessage(t));
        }

        BytesMessage bytes = s.createBytesMessage();
        bytes.writeBoolean(true);
        bytes.writeByte((byte) -5);
        bytes.writeShort((short) -300);
        bytes.writeChar('€');
        bytes.writeInt(0x12345678);
        bytes.writeLong(-1234567890123L);
        bytes.writeFloat(1.25f);
        bytes.writeDouble(-Math.PI);
        bytes.writeUTF(UNICODE);
        bytes.writeBytes(allBytes());
        out.add(bytes);
        out.add(s.createBytesMessage());

        MapMessage map = s.createMapMessage();
        map.setBoolean("bool", true);
        map.setByte("byte", (byte) 7);
        map.setShort("short", (short) -300);
        map.setChar("char", 'ß');
        map.setInt("int", Integer.MIN_VALUE);
        map.setLong("long", Long.MAX_VALUE);
        map.setFloat("float", 1.5f);
        map.setDouble("double", Math.PI);
        map.setString("string", MAP_TEXT);
        map.setString("empty", "");
        map.setString("null", null);
        map.setBytes("bytes", MAP_BYTES);
        map.setObject("boxed", Integer.valueOf(42));
        out.add(map);
        out.add(s.createMapMessage());

        StreamMessage stream = s.createStreamMessage();
        for (Object v : streamValues()) {
            stream.writeObject(v);
        }
        stream.writeBytes(MAP_BYTES);
        out.add(stream);

        out.add(s.createObjectMessage(order()));
        out.add(s.createObjectMessage());

        Message plain = s.createMessage();
        plain.setBooleanProperty("p-bool", true);
        plain.setByteProperty("p-byte", (byte) -1);
        plain.setShortProperty("p-short", (short) 1234);
        plain.setIntProperty("p-int", -99);
        plain.setLongProperty("p-long", 1L << 40);
        plain.setFloatProperty("p-float", 0.5f);
        plain.setDoubleProperty("p-double", 1e300);
        plain.setStringProperty("p-string", MAP_TEXT);
        plain.setObjectProperty("p-object", Long.valueOf(-7));
        out.add(plain);

        for (int i = 0; i < out.size(); i++) {
            Message m = out.get(i);
            m.setJMSCorrelationID("types-" + i);
            m.setJMSType(m.getClass().getSimpleName());
            p.send(m);
        }
        check(true, "sent " + out.size() + " messages of every type");
        return out.size();
    }

    static void expectEof(StreamMessage m, String what) throws JMSException {
        try {
            Object extra = m.readObject();
            check(false, what + ": nothing after the last value, got " + extra);
        } catch (MessageEOFException e) {
            check(true, what + ": then the end of the stream");
        }
    }

    static void receiveTypes(MessageConsumer consumer) throws JMSException {
        int n = 0;
        for (String t : TEXTS) {
            Message m = consumer.receive(WAIT_MS);
            String what = "text message " + n + (t == null ? " (null)" : " (" + t.length() + " chars)");
            check(m instanceof TextMessage, what + " is a TextMessage: " + kind(m));
            check(("types-" + n).equals(m.getJMSCorrelationID()), what + " in order");
            String got = ((TextMessage) m).getText();
            check(Objects.equals(t, got), what + " has its text"
                    + (Objects.equals(t, got) || got == null || got.length() > 200 ? "" : ": " + got));
            n++;
        }

        Message m = consumer.receive(WAIT_MS);
        check(m instanceof BytesMessage, "a BytesMessage: " + kind(m));
        BytesMessage bytes = (BytesMessage) m;
        byte[] expectedBody = bytesBody();
        byte[] body = new byte[(int) bytes.getBodyLength()];
        check(bytes.readBytes(body) == expectedBody.length && Arrays.equals(body, expectedBody),
                "bytes: the body byte for byte (" + body.length + " bytes)");
        bytes.reset();
        check(bytes.readBoolean(), "bytes: boolean");
        check(bytes.readByte() == -5, "bytes: byte");
        check(bytes.readShort() == -300, "bytes: short");
        check(bytes.readChar() == '€', "bytes: char");
        check(bytes.readInt() == 0x12345678, "bytes: int");
        check(bytes.readLong() == -1234567890123L, "bytes: long");
        check(bytes.readFloat() == 1.25f, "bytes: float");
        check(bytes.readDouble() == -Math.PI, "bytes: double");
        check(UNICODE.equals(bytes.readUTF()), "bytes: modified UTF-8 string");
        byte[] raw = new byte[1000];
        int len = bytes.readBytes(raw);
        check(len == 768 && Arrays.equals(Arrays.copyOf(raw, len), allBytes()), "bytes: every byte value, " + len);
        check(bytes.readBytes(raw) == -1, "bytes: then the end");
        n++;
        m = consumer.receive(WAIT_MS);
        check(m instanceof BytesMessage && ((BytesMessage) m).getBodyLength() == 0, "an empty BytesMessage");
        n++;

        m = consumer.receive(WAIT_MS);
        check(m instanceof MapMessage, "a MapMessage: " + kind(m));
        MapMessage map = (MapMessage) m;
        Set<String> names = new HashSet<>();
        for (Enumeration<?> e = map.getMapNames(); e.hasMoreElements();) {
            names.add((String) e.nextElement());
        }
        check(names.equals(Set.of("bool", "byte", "short", "char", "int", "long", "float", "double", "string",
                "empty", "null", "bytes", "boxed")), "map: every name " + names);
        check(map.getObject("bool").equals(Boolean.TRUE), "map: boolean");
        check(map.getObject("byte").equals((byte) 7), "map: byte");
        check(map.getObject("short").equals((short) -300), "map: short");
        check(map.getObject("char").equals('ß'), "map: char");
        check(map.getObject("int").equals(Integer.MIN_VALUE), "map: int");
        check(map.getObject("long").equals(Long.MAX_VALUE), "map: long");
        check(map.getObject("float").equals(1.5f), "map: float");
        check(map.getObject("double").equals(Math.PI), "map: double");
        check(MAP_TEXT.equals(map.getObject("string")), "map: string " + codePoints(map.getObject("string")));
        check("".equals(map.getObject("empty")), "map: empty string");
        check(map.itemExists("null") && map.getObject("null") == null, "map: null");
        check(Arrays.equals(map.getBytes("bytes"), MAP_BYTES), "map: bytes");
        check(map.getObject("boxed").equals(42), "map: an object");
        n++;
        m = consumer.receive(WAIT_MS);
        check(m instanceof MapMessage && !((MapMessage) m).getMapNames().hasMoreElements(), "an empty MapMessage");
        n++;

        m = consumer.receive(WAIT_MS);
        check(m instanceof StreamMessage, "a StreamMessage: " + kind(m));
        StreamMessage stream = (StreamMessage) m;
        for (Object expected : streamValues()) {
            Object got = stream.readObject();
            check(Objects.equals(expected, got)
                    && (expected == null || expected.getClass().equals(got.getClass())),
                    "stream: " + (expected == null ? "null" : expected.getClass().getSimpleName() + " " + expected));
        }
        byte[] buf = new byte[16];
        int read = stream.readBytes(buf);
        check(read == MAP_BYTES.length && Arrays.equals(Arrays.copyOf(buf, read), MAP_BYTES), "stream: bytes");
        check(stream.readBytes(buf) == -1, "stream: the bytes end");
        expectEof(stream, "stream");
        n++;

        m = consumer.receive(WAIT_MS);
        check(m instanceof ObjectMessage, "an ObjectMessage: " + kind(m));
        Object object = ((ObjectMessage) m).getObject();
        check(order().equals(object), "object: the client deserializes what was sent: " + object);
        n++;
        m = consumer.receive(WAIT_MS);
        check(m instanceof ObjectMessage && ((ObjectMessage) m).getObject() == null, "an ObjectMessage without an object");
        n++;

        m = consumer.receive(WAIT_MS);
        check(m != null && m.getClass() == ActiveMQMessage.class, "a plain Message: " + kind(m));
        check(Boolean.TRUE.equals(m.getObjectProperty("p-bool")), "property: boolean");
        check(Byte.valueOf((byte) -1).equals(m.getObjectProperty("p-byte")), "property: byte");
        check(Short.valueOf((short) 1234).equals(m.getObjectProperty("p-short")), "property: short");
        check(Integer.valueOf(-99).equals(m.getObjectProperty("p-int")), "property: int");
        check(Long.valueOf(1L << 40).equals(m.getObjectProperty("p-long")), "property: long");
        check(Float.valueOf(0.5f).equals(m.getObjectProperty("p-float")), "property: float");
        check(Double.valueOf(1e300).equals(m.getObjectProperty("p-double")), "property: double");
        check(MAP_TEXT.equals(m.getObjectProperty("p-string")), "property: string " + codePoints(m.getObjectProperty("p-string")));
        check(Long.valueOf(-7).equals(m.getObjectProperty("p-object")), "property: object");
        check("ActiveMQMessage".equals(m.getJMSType()), "plain message: JMSType");
        n++;
        check(consumer.receive(NOTHING_MS) == null, "received all " + n + " messages, exactly as sent");
    }

    static void types(String url) throws JMSException {
        Connection pc = connect(url);
        Session ps = pc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        sendTypes(ps, ps.createQueue("features.types"), DeliveryMode.PERSISTENT);
        pc.close();
        Connection cc = connect(url);
        Session cs = cc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        receiveTypes(cs.createConsumer(cs.createQueue("features.types")));
        cc.close();
    }

    static void typesSend(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        sendTypes(s, s.createQueue("features.types"), DeliveryMode.PERSISTENT);
        MessageProducer p = s.createProducer(s.createQueue("features.np"));
        p.send(s.createTextMessage("persistent"), DeliveryMode.PERSISTENT, 4, 0);
        p.send(s.createTextMessage("non-persistent"), DeliveryMode.NON_PERSISTENT, 4, 0);
        check(true, "sent a persistent and a non-persistent message");
        c.close();
    }

    static void typesReceive(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        receiveTypes(s.createConsumer(s.createQueue("features.types")));
        List<String> np = drain(s.createConsumer(s.createQueue("features.np")));
        check(np.equals(List.of("persistent")), "only the persistent message survived the restart: " + np);
        c.close();
    }

    // ------------------------------------------------------------------
    // Acknowledgement modes
    // ------------------------------------------------------------------

    static void ackAuto(String url) throws Exception {
        String q = "features.ack.auto";
        String[] bodies = new String[10];
        for (int i = 0; i < bodies.length; i++) {
            bodies[i] = "m" + i;
        }
        sendTexts(url, q, bodies);
        // Each round takes one message (the consumer had all the others
        // prefetched) and closes its consumer, session or connection.
        String[] closes = {"consumer", "session", "connection", "consumer", "session", "connection"};
        for (int i = 0; i < closes.length; i++) {
            Connection c = connect(url);
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageConsumer consumer = s.createConsumer(s.createQueue(q));
            Message m = consumer.receive(WAIT_MS);
            check(m != null && ("m" + i).equals(text(m)), "round " + i + ": received " + (m == null ? null : text(m)));
            check(!m.getJMSRedelivered() && deliveryCount(m) == 1,
                    "m" + i + " is a first delivery: it was only prefetched before (JMSRedelivered "
                            + m.getJMSRedelivered() + ", JMSXDeliveryCount " + deliveryCount(m) + ")");
            switch (closes[i]) {
                case "consumer":
                    consumer.close();
                    break;
                case "session":
                    s.close();
                    break;
                default:
                    break;
            }
            c.close();
        }
        // A MessageListener takes the rest.
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        List<String> heard = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch rest = new CountDownLatch(bodies.length - closes.length);
        s.createConsumer(s.createQueue(q)).setMessageListener(m -> {
            try {
                heard.add(text(m) + (m.getJMSRedelivered() ? " (redelivered)" : ""));
            } catch (JMSException e) {
                heard.add(e.toString());
            }
            rest.countDown();
        });
        check(rest.await(WAIT_MS, TimeUnit.MILLISECONDS), "a listener heard the rest: " + heard);
        check(heard.equals(List.of("m6", "m7", "m8", "m9")), "in order, each once: " + heard);
        c.close();
        check(leftOn(url, q).isEmpty(), "every auto-acknowledged message is gone");
        check(leftOn(url, "ActiveMQ.DLQ").isEmpty(), "and none went to the DLQ");
    }

    static void ackClient(String url) throws JMSException {
        String q = "features.ack.client";
        sendTexts(url, q, "m0", "m1", "m2", "m3", "m4", "m5");

        Connection c1 = connect(url);
        Session s1 = c1.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        MessageConsumer k1 = s1.createConsumer(s1.createQueue(q));
        Message last = null;
        for (int i = 0; i < 3; i++) {
            last = k1.receive(WAIT_MS);
            check(last != null && ("m" + i).equals(text(last)), "received m" + i);
        }
        last.acknowledge();
        check(true, "m2 acknowledged (and with it m0 and m1)");
        for (int i = 3; i < 5; i++) {
            Message m = k1.receive(WAIT_MS);
            check(m != null && ("m" + i).equals(text(m)), "received m" + i + ", not acknowledged");
        }
        c1.close();

        Connection c2 = connect(url);
        Session s2 = c2.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        MessageConsumer k2 = s2.createConsumer(s2.createQueue(q));
        for (int i = 3; i < 6; i++) {
            Message m = k2.receive(WAIT_MS);
            check(m != null && ("m" + i).equals(text(m)), "after the close: m" + i + " (" + (m == null ? null : text(m)) + ")");
            boolean seen = i < 5;
            check(m.getJMSRedelivered() == seen && deliveryCount(m) == (seen ? 2 : 1),
                    "m" + i + (seen ? " redelivered" : " a first delivery") + " (JMSRedelivered "
                            + m.getJMSRedelivered() + ", JMSXDeliveryCount " + deliveryCount(m) + ")");
        }
        s2.recover();
        Message m = null;
        for (int i = 3; i < 6; i++) {
            m = k2.receive(WAIT_MS);
            check(m != null && ("m" + i).equals(text(m)) && m.getJMSRedelivered(),
                    "after Session.recover(): m" + i + " redelivered");
        }
        m.acknowledge();
        check(k2.receive(NOTHING_MS) == null, "m5 acknowledged, nothing more");
        c2.close();
        check(leftOn(url, q).isEmpty(), "acknowledging a later message acknowledged the earlier ones");
    }

    static void ackDupsOk(String url) throws JMSException {
        String q = "features.ack.dups";
        String[] bodies = new String[20];
        for (int i = 0; i < bodies.length; i++) {
            bodies[i] = "d" + i;
        }
        sendTexts(url, q, bodies);
        Connection c = connect(url);
        Session s = c.createSession(false, Session.DUPS_OK_ACKNOWLEDGE);
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        for (int i = 0; i < bodies.length; i++) {
            Message m = consumer.receive(WAIT_MS);
            check(m != null && bodies[i].equals(text(m)), "DUPS_OK received " + bodies[i]);
        }
        check(consumer.receive(NOTHING_MS) == null, "nothing more");
        c.close();
        check(leftOn(url, q).isEmpty(), "everything received is gone after the close");
    }

    static void ackIndividual(String url) throws JMSException {
        String q = "features.ack.individual";
        sendTexts(url, q, "i0", "i1", "i2", "i3", "i4");
        Connection c = connect(url);
        Session s = c.createSession(false, ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE);
        check(s.getAcknowledgeMode() == 4, "an INDIVIDUAL_ACKNOWLEDGE session");
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        List<Message> got = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            Message m = consumer.receive(WAIT_MS);
            check(m != null && ("i" + i).equals(text(m)), "received i" + i);
            got.add(m);
        }
        got.get(1).acknowledge();
        got.get(3).acknowledge();
        check(true, "acknowledged i1 and i3 only");
        check(consumer.receive(NOTHING_MS) == null, "nothing more for now");
        c.close();
        Connection c2 = connect(url);
        Session s2 = c2.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer again = s2.createConsumer(s2.createQueue(q));
        for (String expected : new String[] {"i0", "i2", "i4"}) {
            Message m = again.receive(WAIT_MS);
            check(m != null && expected.equals(text(m)) && m.getJMSRedelivered(),
                    "the unacknowledged " + expected + " comes back redelivered (" + (m == null ? null : text(m)) + ")");
        }
        check(again.receive(NOTHING_MS) == null, "the acknowledged i1 and i3 are gone");
        c2.close();
    }

    // ------------------------------------------------------------------
    // Local transactions
    // ------------------------------------------------------------------

    static void transactions(String url) throws JMSException {
        Connection pc = connect(url);
        Session ps = pc.createSession(true, Session.SESSION_TRANSACTED);
        check(ps.getTransacted() && ps.getAcknowledgeMode() == Session.SESSION_TRANSACTED, "a transacted session");
        Queue in = ps.createQueue("features.tx.in");
        MessageProducer p = ps.createProducer(in);
        Connection cc = connect(url);
        Session cs = cc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer watcher = cs.createConsumer(cs.createQueue("features.tx.in"));

        p.send(ps.createTextMessage("a"));
        p.send(ps.createTextMessage("b"));
        check(watcher.receive(NOTHING_MS) == null, "sends are invisible before the commit");
        ps.commit();
        Message m = watcher.receive(WAIT_MS);
        check(m != null && "a".equals(text(m)), "the commit publishes a");
        m = watcher.receive(WAIT_MS);
        check(m != null && "b".equals(text(m)), "and b");

        p.send(ps.createTextMessage("rolled back"));
        ps.rollback();
        p.send(ps.createTextMessage("c"));
        ps.commit();
        m = watcher.receive(WAIT_MS);
        check(m != null && "c".equals(text(m)), "a rolled-back send is discarded, the next commit publishes c: " + (m == null ? null : text(m)));
        check(watcher.receive(NOTHING_MS) == null, "nothing else");
        watcher.close();

        // Receive and reply in one transaction: rollback undoes both.
        sendTexts(url, "features.tx.work", "job");
        Session ts = cc.createSession(true, Session.SESSION_TRANSACTED);
        MessageConsumer work = ts.createConsumer(ts.createQueue("features.tx.work"));
        MessageProducer replies = ts.createProducer(ts.createQueue("features.tx.out"));
        Message job = work.receive(WAIT_MS);
        check(job != null && "job".equals(text(job)), "received the job in a transaction");
        check(!job.getJMSRedelivered() && deliveryCount(job) == 1, "a first delivery (JMSXDeliveryCount 1)");
        replies.send(ts.createTextMessage("done once"));
        ts.rollback();
        for (int attempt = 2; attempt <= 3; attempt++) {
            job = work.receive(WAIT_MS);
            check(job != null && "job".equals(text(job)), "the rollback redelivers the job (" + attempt + ")");
            check(job.getJMSRedelivered() && deliveryCount(job) == attempt,
                    "JMSRedelivered, JMSXDeliveryCount " + attempt + " (" + job.getJMSRedelivered() + ", "
                            + deliveryCount(job) + ")");
            if (attempt == 2) {
                ts.rollback();
            }
        }
        replies.send(ts.createTextMessage("done"));
        ts.commit();
        check(work.receive(NOTHING_MS) == null, "the committed receive is not delivered again");
        check(drainQueue(url, "features.tx.out").equals(List.of("done")), "only the committed reply was published");
        work.close();
        cc.close();
        pc.close();
        check(leftOn(url, "features.tx.work").isEmpty(), "the committed job is gone");
    }

    // ------------------------------------------------------------------
    // Selectors
    // ------------------------------------------------------------------

    /** Message i: color red (even) or blue, n = i, priority 8 (i % 3 == 0) or 4, JMSType b (i % 4 == 1) or a. */
    static void sendSelectable(Session s, Destination d, int count) throws JMSException {
        MessageProducer p = s.createProducer(d);
        for (int i = 0; i < count; i++) {
            TextMessage m = s.createTextMessage("s" + i);
            m.setStringProperty("color", i % 2 == 0 ? "red" : "blue");
            m.setIntProperty("n", i);
            m.setJMSType(i % 4 == 1 ? "b" : "a");
            m.setJMSCorrelationID("c-" + i);
            p.send(m, DeliveryMode.PERSISTENT, i % 3 == 0 ? 8 : 4, 0);
        }
    }

    static void selectorsQueue(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("features.sel.queue");
        sendSelectable(s, q, 12);
        // Each consumer takes what matches of what the earlier ones left.
        String[][] stages = {
            {"color = 'red' AND n > 4", "s6 s8 s10"},
            {"JMSPriority > 5", "s0 s3 s9"},
            {"JMSType = 'b'", "s1 s5"},
            {"JMSCorrelationID IN ('c-2', 'c-7') OR n BETWEEN 10 AND 11", "s2 s7 s11"},
            {"color LIKE 'bl%' AND JMSPriority = 4 AND JMSDeliveryMode = 'PERSISTENT'", ""},
            {"", "s4"},
        };
        for (String[] stage : stages) {
            MessageConsumer consumer = stage[0].isEmpty() ? s.createConsumer(q) : s.createConsumer(q, stage[0]);
            List<String> got = new ArrayList<>();
            for (Message m = consumer.receive(stage[1].isEmpty() ? NOTHING_MS : WAIT_MS); m != null; m = consumer.receive(NOTHING_MS)) {
                got.add(text(m));
            }
            check(String.join(" ", got).equals(stage[1]), "selector [" + stage[0] + "] took exactly: " + got);
            consumer.close();
        }
        // Two consumers at once, each with its own selector.
        sendSelectable(s, q, 6);
        MessageConsumer red = s.createConsumer(q, "color = 'red'");
        MessageConsumer blue = s.createConsumer(q, "color = 'blue'");
        List<String> reds = drain(red);
        check(reds.equals(List.of("s0", "s2", "s4")), "a red consumer beside a blue one: " + reds);
        List<String> blues = drain(blue);
        // s3 has priority 8: it comes first.
        check(blues.equals(List.of("s3", "s1", "s5")), "and the blue one: " + blues);
        c.close();
    }

    static void selectorsTopic(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Topic t = s.createTopic("features.sel.topic");
        MessageConsumer red = s.createConsumer(t, "color = 'red'");
        MessageConsumer urgent = s.createConsumer(t, "JMSPriority > 5 AND JMSType = 'a'");
        MessageConsumer typed = s.createConsumer(t, "JMSType = 'b' OR n = 7");
        MessageConsumer all = s.createConsumer(t);
        sendSelectable(s, t, 10);
        check(drain(red).equals(List.of("s0", "s2", "s4", "s6", "s8")), "color = 'red' on a topic");
        check(drain(urgent).equals(List.of("s0", "s3", "s6")), "JMSPriority > 5 AND JMSType = 'a' on a topic");
        check(drain(typed).equals(List.of("s1", "s5", "s7", "s9")), "JMSType = 'b' OR n = 7 on a topic");
        List<String> everything = drain(all);
        check(everything.size() == 10, "a subscriber without a selector got all: " + everything);
        c.close();
    }

    // ------------------------------------------------------------------
    // Durable subscribers
    // ------------------------------------------------------------------

    static void publish(String url, String topic, int deliveryMode, String... bodies) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer p = s.createProducer(s.createTopic(topic));
        p.setDeliveryMode(deliveryMode);
        for (String b : bodies) {
            TextMessage m = s.createTextMessage(b);
            m.setStringProperty("kind", b.startsWith("keep") ? "keep" : "other");
            p.send(m);
        }
        c.close();
    }

    static void durable(String url) throws JMSException {
        String topic = "features.durable";
        Connection c = connect(url, "durable-client");
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Topic t = s.createTopic(topic);
        s.createDurableSubscriber(t, "all").close();
        s.createDurableSubscriber(t, "kept", "kind = 'keep'", false).close();
        c.close();
        check(true, "two durable subscriptions made, then offline");

        publish(url, topic, DeliveryMode.PERSISTENT, "keep-1", "drop-2", "keep-3");
        publish(url, topic, DeliveryMode.NON_PERSISTENT, "keep-4 (non-persistent)");

        c = connect(url, "durable-client");
        s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        t = s.createTopic(topic);
        TopicSubscriber all = s.createDurableSubscriber(t, "all");
        check(drain(all).equals(List.of("keep-1", "drop-2", "keep-3", "keep-4 (non-persistent)")),
                "what was published while offline was kept");
        TopicSubscriber kept = s.createDurableSubscriber(t, "kept", "kind = 'keep'", false);
        check(drain(kept).equals(List.of("keep-1", "keep-3", "keep-4 (non-persistent)")), "with its selector: only the matching ones");
        try {
            s.unsubscribe("all");
            check(false, "an active durable subscription cannot be deleted");
        } catch (JMSException e) {
            check(true, "an active durable subscription cannot be deleted: " + e.getMessage());
        }
        all.close();
        s.unsubscribe("all");
        check(true, "unsubscribed once closed");
        kept.close();
        c.close();

        publish(url, topic, DeliveryMode.PERSISTENT, "keep-5");
        c = connect(url, "durable-client");
        s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        t = s.createTopic(topic);
        check(drain(s.createDurableSubscriber(t, "kept", "kind = 'keep'", false)).equals(List.of("keep-5")),
                "the other subscription goes on");
        check(s.createDurableSubscriber(t, "all").receive(NOTHING_MS) == null,
                "a new subscription of the unsubscribed name starts empty");
        c.close();
    }

    static void durableOffline(String url) throws JMSException {
        Connection c = connect(url, "restart-client");
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Topic t = s.createTopic("features.durable.restart");
        s.createDurableSubscriber(t, "sub").close();
        s.createDurableSubscriber(t, "kept", "kind = 'keep'", false).close();
        c.close();
        publish(url, "features.durable.restart", DeliveryMode.PERSISTENT, "keep-1", "drop-2", "keep-3", "drop-4", "keep-5");
        check(true, "published five messages while the subscriber was offline");
    }

    static void durableReceive(String url) throws JMSException {
        Connection c = connect(url, "restart-client");
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Topic t = s.createTopic("features.durable.restart");
        TopicSubscriber sub = s.createDurableSubscriber(t, "sub");
        check(drain(sub).equals(List.of("keep-1", "drop-2", "keep-3", "drop-4", "keep-5")),
                "all five were kept across the restart");
        TopicSubscriber kept = s.createDurableSubscriber(t, "kept", "kind = 'keep'", false);
        check(drain(kept).equals(List.of("keep-1", "keep-3", "keep-5")), "and the selector's three");
        sub.close();
        kept.close();
        s.unsubscribe("sub");
        s.unsubscribe("kept");
        check(true, "unsubscribed both");
        c.close();
    }

    static void durableGone(String url) throws JMSException {
        publish(url, "features.durable.restart", DeliveryMode.PERSISTENT, "keep-after-unsubscribe");
        Connection c = connect(url, "restart-client");
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Topic t = s.createTopic("features.durable.restart");
        check(s.createDurableSubscriber(t, "sub").receive(NOTHING_MS) == null,
                "the unsubscribed subscription stayed deleted across the restart");
        check(s.createDurableSubscriber(t, "kept", "kind = 'keep'", false).receive(NOTHING_MS) == null,
                "both of them");
        c.close();
    }

    // ------------------------------------------------------------------
    // Wildcards, priorities, expiry, dead letters, non-persistent
    // ------------------------------------------------------------------

    static void wildcards(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer any = s.createConsumer(s.createTopic("PRICE.>"));
        MessageConsumer x = s.createConsumer(s.createTopic("PRICE.*.X"));
        MessageProducer p = s.createProducer(null);
        String[] topics = {"PRICE.STOCK.X", "PRICE.STOCK.Y", "OTHER.STOCK.X", "PRICE.BOND.X", "PRICE.A.B.X", "PRICE.X"};
        for (String t : topics) {
            p.send(s.createTopic(t), s.createTextMessage(t));
        }
        List<String> gotAny = new ArrayList<>();
        for (Message m = any.receive(WAIT_MS); m != null; m = any.receive(NOTHING_MS)) {
            check(((Topic) m.getJMSDestination()).getTopicName().equals(text(m)),
                    "PRICE.> got it from its own destination " + m.getJMSDestination());
            gotAny.add(text(m));
        }
        check(gotAny.equals(List.of("PRICE.STOCK.X", "PRICE.STOCK.Y", "PRICE.BOND.X", "PRICE.A.B.X", "PRICE.X")),
                "PRICE.> matches every PRICE topic at any depth: " + gotAny);
        List<String> gotX = new ArrayList<>();
        for (Message m = x.receive(WAIT_MS); m != null; m = x.receive(NOTHING_MS)) {
            check(((Topic) m.getJMSDestination()).getTopicName().equals(text(m)),
                    "PRICE.*.X got it from its own destination " + m.getJMSDestination());
            gotX.add(text(m));
        }
        check(gotX.equals(List.of("PRICE.STOCK.X", "PRICE.BOND.X")), "PRICE.*.X matches one level: " + gotX);
        c.close();
    }

    static void priority(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("features.priority");
        MessageProducer p = s.createProducer(q);
        int[] priorities = {4, 0, 9, 4, 7, 1, 9, 4, 0, 7, 5, 3, 8, 2, 6};
        for (int i = 0; i < priorities.length; i++) {
            p.send(s.createTextMessage(priorities[i] + "/" + i), DeliveryMode.PERSISTENT, priorities[i], 0);
        }
        check(true, "a backlog of " + priorities.length + " messages of mixed priorities");
        MessageConsumer consumer = s.createConsumer(q);
        List<String> got = new ArrayList<>();
        int lastPriority = 10;
        int lastIndex = -1;
        for (int i = 0; i < priorities.length; i++) {
            Message m = consumer.receive(WAIT_MS);
            check(m != null, "received " + i);
            String[] parts = text(m).split("/");
            int prio = Integer.parseInt(parts[0]);
            int index = Integer.parseInt(parts[1]);
            check(m.getJMSPriority() == prio, "JMSPriority " + prio + " kept");
            got.add(text(m));
            check(prio < lastPriority || (prio == lastPriority && index > lastIndex),
                    "highest priority first, in order within one: " + got);
            lastPriority = prio;
            lastIndex = index;
        }
        check(consumer.receive(NOTHING_MS) == null, "all " + priorities.length + " by priority");
        c.close();
    }

    /** The connection advisories as ActiveMQ's own classes read them: a
     *  ConnectionInfo for each connection open (those open before the
     *  subscription too), a RemoveInfo with its id when it closes. */
    static void advisories(String url) throws Exception {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer advisories = s.createConsumer(s.createTopic("ActiveMQ.Advisory.Connection"));
        Message m = advisories.receive(WAIT_MS);
        check(m instanceof org.apache.activemq.command.ActiveMQMessage
                && ((org.apache.activemq.command.ActiveMQMessage) m).getDataStructure()
                        instanceof org.apache.activemq.command.ConnectionInfo,
                "the open connection is told first, as a ConnectionInfo: " + m);
        check("Advisory".equals(m.getJMSType()), "JMSType Advisory");
        Connection other = connect(url, "advised-client");
        org.apache.activemq.command.ConnectionInfo info = null;
        for (int i = 0; i < 10 && info == null; i++) {
            m = advisories.receive(WAIT_MS);
            Object ds = m == null ? null : ((org.apache.activemq.command.ActiveMQMessage) m).getDataStructure();
            if (ds instanceof org.apache.activemq.command.ConnectionInfo
                    && "advised-client".equals(((org.apache.activemq.command.ConnectionInfo) ds).getClientId())) {
                info = (org.apache.activemq.command.ConnectionInfo) ds;
            }
        }
        check(info != null, "a new connection is announced with its client id");
        check(info.getPassword() == null || info.getPassword().isEmpty(), "no password in the advisory");
        other.close();
        org.apache.activemq.command.RemoveInfo removed = null;
        for (int i = 0; i < 10 && removed == null; i++) {
            m = advisories.receive(WAIT_MS);
            Object ds = m == null ? null : ((org.apache.activemq.command.ActiveMQMessage) m).getDataStructure();
            if (ds instanceof org.apache.activemq.command.RemoveInfo) {
                removed = (org.apache.activemq.command.RemoveInfo) ds;
            }
        }
        check(removed != null && info.getConnectionId().equals(removed.getObjectId()),
                "its close is announced as a RemoveInfo with the same id: " + removed);
        c.close();
    }

    /** The producer advisories as ActiveMQ's classes read them: a
     *  ProducerInfo with producerCount when a producer opens, a RemoveInfo
     *  with its id when it closes. */
    static void producerAdvisories(String url) throws Exception {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer advisories = s.createConsumer(
                s.createTopic("ActiveMQ.Advisory.Producer.Queue.features.produced"));
        Session ps = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer p = ps.createProducer(ps.createQueue("features.produced"));
        Message m = advisories.receive(WAIT_MS);
        Object ds = m == null ? null : ((org.apache.activemq.command.ActiveMQMessage) m).getDataStructure();
        check(ds instanceof org.apache.activemq.command.ProducerInfo, "a new producer is announced as a ProducerInfo: " + m);
        org.apache.activemq.command.ProducerInfo info = (org.apache.activemq.command.ProducerInfo) ds;
        check(info.getDestination() != null && "features.produced".equals(
                ((org.apache.activemq.command.ActiveMQDestination) info.getDestination()).getPhysicalName()),
                "it names the queue");
        check(m.getIntProperty("producerCount") == 1, "producerCount 1");
        p.close();
        m = advisories.receive(WAIT_MS);
        ds = m == null ? null : ((org.apache.activemq.command.ActiveMQMessage) m).getDataStructure();
        check(ds instanceof org.apache.activemq.command.RemoveInfo
                && info.getProducerId().equals(((org.apache.activemq.command.RemoveInfo) ds).getObjectId()),
                "its close is announced as a RemoveInfo with the same producer id: " + ds);
        check(m.getIntProperty("producerCount") == 0, "producerCount 0");
        c.close();
    }

    static void expiry(String url) throws Exception {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("features.expiry");
        MessageProducer p = s.createProducer(q);
        long before = System.currentTimeMillis();
        p.send(s.createTextMessage("short-lived"), DeliveryMode.PERSISTENT, 4, 300);
        p.send(s.createTextMessage("short-lived, non-persistent"), DeliveryMode.NON_PERSISTENT, 4, 300);
        p.send(s.createTextMessage("long-lived"), DeliveryMode.PERSISTENT, 4, 60_000);
        p.send(s.createTextMessage("forever"), DeliveryMode.PERSISTENT, 4, 0);
        c.close();
        Thread.sleep(1000);

        // A client that does not drop expired messages itself would show any
        // the broker delivered.
        ActiveMQConnectionFactory f = factory(url);
        f.setConsumerExpiryCheckEnabled(false);
        Connection c2 = f.createConnection();
        c2.start();
        Session s2 = c2.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer consumer = s2.createConsumer(s2.createQueue("features.expiry"));
        Message m = consumer.receive(WAIT_MS);
        check(m != null && "long-lived".equals(text(m)), "the expired messages were not delivered: " + (m == null ? null : text(m)));
        check(m.getJMSExpiration() >= before + 60_000 && m.getJMSExpiration() <= System.currentTimeMillis() + 60_000,
                "JMSExpiration kept: " + m.getJMSExpiration());
        m = consumer.receive(WAIT_MS);
        check(m != null && "forever".equals(text(m)) && m.getJMSExpiration() == 0, "a message without expiry");
        check(consumer.receive(NOTHING_MS) == null, "nothing more");
        MessageConsumer dlq = s2.createConsumer(s2.createQueue("ActiveMQ.DLQ"));
        m = dlq.receive(WAIT_MS);
        check(m != null && "short-lived".equals(text(m)), "the expired persistent message is in ActiveMQ.DLQ");
        check(q.equals(((ActiveMQMessage) m).getOriginalDestination()), "with its original destination");
        check(dlq.receive(NOTHING_MS) == null, "the non-persistent one was dropped");
        c2.close();
    }

    static ActiveMQConnectionFactory redeliveringFactory(String url) {
        ActiveMQConnectionFactory f = factory(url);
        RedeliveryPolicy policy = f.getRedeliveryPolicy();
        policy.setMaximumRedeliveries(2);
        policy.setInitialRedeliveryDelay(0);
        policy.setRedeliveryDelay(0);
        policy.setUseExponentialBackOff(false);
        return f;
    }

    static Message dlqMessage(Session s, String body, String from) throws JMSException {
        MessageConsumer dlq = s.createConsumer(s.createQueue("ActiveMQ.DLQ"), "JMSCorrelationID = '" + body + "'");
        Message m = dlq.receive(WAIT_MS);
        check(m != null && body.equals(text(m)), "\"" + body + "\" is in ActiveMQ.DLQ");
        check(s.createQueue(from).equals(((ActiveMQMessage) m).getOriginalDestination()),
                "with its original destination " + ((ActiveMQMessage) m).getOriginalDestination());
        String cause = m.getStringProperty("dlqDeliveryFailureCause");
        check(cause != null && cause.contains("exceeds redelivery policy limit"), "and the client's reason: " + cause);
        dlq.close();
        return m;
    }

    static void dlq(String url) throws JMSException {
        Connection pc = connect(url);
        Session ps = pc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        for (String q : new String[] {"features.poison.tx", "features.poison.recover"}) {
            TextMessage m = ps.createTextMessage("poison " + q);
            m.setJMSCorrelationID("poison " + q);
            ps.createProducer(ps.createQueue(q)).send(m);
        }
        pc.close();

        Connection c = redeliveringFactory(url).createConnection();
        c.start();
        Session tx = c.createSession(true, Session.SESSION_TRANSACTED);
        MessageConsumer consumer = tx.createConsumer(tx.createQueue("features.poison.tx"));
        String id = null;
        for (int delivery = 1; delivery <= 3; delivery++) {
            Message m = consumer.receive(WAIT_MS);
            check(m != null && deliveryCount(m) == delivery && m.getJMSRedelivered() == (delivery > 1),
                    "transacted: delivery " + delivery + (m == null ? "" : " (JMSXDeliveryCount " + deliveryCount(m) + ")"));
            id = m.getJMSMessageID();
            tx.rollback();
        }
        check(consumer.receive(NOTHING_MS) == null, "no fourth delivery: maximumRedeliveries is 2");
        tx.commit();

        Session cl = c.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        MessageConsumer recovering = cl.createConsumer(cl.createQueue("features.poison.recover"));
        for (int delivery = 1; delivery <= 3; delivery++) {
            Message m = recovering.receive(WAIT_MS);
            check(m != null && deliveryCount(m) == delivery && m.getJMSRedelivered() == (delivery > 1),
                    "Session.recover(): delivery " + delivery);
            cl.recover();
        }
        check(recovering.receive(NOTHING_MS) == null, "no fourth delivery after recover()");
        c.close();

        Connection dc = connect(url);
        Session ds = dc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Message dead = dlqMessage(ds, "poison features.poison.tx", "features.poison.tx");
        check(id.equals(dead.getJMSMessageID()), "the dead letter keeps its JMSMessageID");
        dlqMessage(ds, "poison features.poison.recover", "features.poison.recover");
        dc.close();
        check(leftOn(url, "features.poison.tx").isEmpty(), "the poison message left its queue");
        check(leftOn(url, "features.poison.recover").isEmpty(), "both of them");
    }

    static void nonPersistent(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("features.np.queue");
        Topic t = s.createTopic("features.np.topic");
        MessageConsumer subscriber = s.createConsumer(t);
        MessageProducer p = s.createProducer(null);
        p.setDeliveryMode(DeliveryMode.NON_PERSISTENT);
        for (int i = 0; i < 5; i++) {
            p.send(q, s.createTextMessage("q" + i));
            p.send(t, s.createTextMessage("t" + i));
        }
        MessageConsumer consumer = s.createConsumer(q);
        for (int i = 0; i < 5; i++) {
            Message m = consumer.receive(WAIT_MS);
            check(m != null && ("q" + i).equals(text(m)) && m.getJMSDeliveryMode() == DeliveryMode.NON_PERSISTENT,
                    "queue: q" + i + " is NON_PERSISTENT");
            m = subscriber.receive(WAIT_MS);
            check(m != null && ("t" + i).equals(text(m)) && m.getJMSDeliveryMode() == DeliveryMode.NON_PERSISTENT,
                    "topic: t" + i + " is NON_PERSISTENT");
        }
        check(consumer.receive(NOTHING_MS) == null && subscriber.receive(NOTHING_MS) == null, "nothing more");
        c.close();
    }

    /**
     * Non-persistent messages far beyond the broker's memory (started with 1 MiB):
     * every synchronous send is answered at once (they spill to the store rather
     * than hold the producer), and they all come back in order, still NON_PERSISTENT.
     */
    static void nonPersistentBacklog(String url) throws JMSException {
        int count = 8000;
        Connection c = connect(url + "?jms.alwaysSyncSend=true");
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("features.np.backlog");
        MessageProducer p = s.createProducer(q);
        p.setDeliveryMode(DeliveryMode.NON_PERSISTENT);
        char[] pad = new char[1024];
        java.util.Arrays.fill(pad, 'x');
        String body = new String(pad);
        long started = System.nanoTime();
        for (int i = 0; i < count; i++) {
            TextMessage m = s.createTextMessage(body);
            m.setIntProperty("n", i);
            p.send(m);
        }
        long sendMs = (System.nanoTime() - started) / 1_000_000;
        System.out.println("ok " + count + " non-persistent sends of 1 KiB answered in " + sendMs + " ms");
        MessageConsumer consumer = s.createConsumer(q);
        for (int i = 0; i < count; i++) {
            Message m = consumer.receive(WAIT_MS);
            check(m != null && m.getIntProperty("n") == i && m.getJMSDeliveryMode() == DeliveryMode.NON_PERSISTENT,
                    "message " + i + " arrives in order, NON_PERSISTENT");
        }
        check(consumer.receive(NOTHING_MS) == null, "nothing more");
        System.out.println("ok all " + count + " received in order");
        c.close();
    }

    /**
     * A broker with users (alice / s3cret-alice): the right password connects
     * and carries messages; a wrong one, or none, is a JMSSecurityException.
     */
    static void login(String url) throws JMSException {
        Connection c = factory(url).createConnection("alice", "s3cret-alice");
        c.start();
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("features.login");
        s.createProducer(q).send(s.createTextMessage("signed in"));
        Message m = s.createConsumer(q).receive(WAIT_MS);
        check(m != null && "signed in".equals(text(m)), "alice connects and is served");
        c.close();
        String[][] refused = {{"alice", "wrong"}, {"mallory", "s3cret-alice"}, {null, null}};
        for (String[] creds : refused) {
            Connection bad = null;
            try {
                bad = factory(url).createConnection(creds[0], creds[1]);
                bad.start();
                bad.createSession(false, Session.AUTO_ACKNOWLEDGE);
                check(false, "user " + creds[0] + " with a wrong password was let in");
            } catch (javax.jms.JMSSecurityException e) {
                System.out.println("ok user " + creds[0] + " refused: " + e.getMessage());
            } finally {
                if (bad != null) {
                    try { bad.close(); } catch (JMSException ignored) { }
                }
            }
        }
    }

    /**
     * One user's row of the permissions matrix: for each destination given
     * (queue:NAME or topic:NAME), whether a synchronous send and a consumer
     * are allowed. Prints "ALLOW op dest" or "DENY op dest" (a
     * JMSSecurityException), so the test compares them with the ACL.
     */
    static void permissions(String url, String user, String password, String[] dests) throws JMSException {
        Connection c = factory(url + "?jms.alwaysSyncSend=true").createConnection(user, password);
        c.start();
        for (String d : dests) {
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            Destination dest = d.startsWith("queue:") ? s.createQueue(d.substring(6)) : s.createTopic(d.substring(6));
            try {
                s.createProducer(dest).send(s.createTextMessage("matrix"));
                System.out.println("ALLOW send " + d);
            } catch (javax.jms.JMSSecurityException e) {
                System.out.println("DENY send " + d + " " + e.getMessage());
            }
            try {
                s.createConsumer(dest).close();
                System.out.println("ALLOW read " + d);
            } catch (javax.jms.JMSSecurityException e) {
                System.out.println("DENY read " + d + " " + e.getMessage());
            }
            s.close();
        }
        c.close();
    }

    /**
     * Client ids belong to their user (alice / s3cret-alice, bob /
     * hunter2-bob): alice's durable subscription makes "owned-app" hers,
     * so bob is refused it with an InvalidClientIDException, before and
     * after a restart, and her subscription keeps what was published.
     * `after`: the run after the restart, which also unsubscribes, after
     * which bob may use the client id.
     */
    static void clientIdOwner(String url, boolean after) throws JMSException {
        String topic = "features.owned";
        if (!after) {
            Connection alice = factory(url).createConnection("alice", "s3cret-alice");
            alice.setClientID("owned-app");
            alice.start();
            Session s = alice.createSession(false, Session.AUTO_ACKNOWLEDGE);
            s.createDurableSubscriber(s.createTopic(topic), "orders").close();
            alice.close();
        }
        Connection bob = factory(url).createConnection("bob", "hunter2-bob");
        try {
            bob.setClientID("owned-app");
            bob.start();
            bob.createSession(false, Session.AUTO_ACKNOWLEDGE);
            check(false, "bob was given alice's client id");
        } catch (javax.jms.InvalidClientIDException e) {
            System.out.println("ok bob refused alice's client id: " + e.getMessage());
        } finally {
            try { bob.close(); } catch (JMSException ignored) { }
        }
        if (!after) {
            Connection p = factory(url + "?jms.alwaysSyncSend=true").createConnection("bob", "hunter2-bob");
            p.start();
            Session s = p.createSession(false, Session.AUTO_ACKNOWLEDGE);
            s.createProducer(s.createTopic(topic)).send(s.createTextMessage("for alice"));
            p.close();
            System.out.println("ok bob published while alice was away");
            return;
        }
        Connection alice = factory(url).createConnection("alice", "s3cret-alice");
        alice.setClientID("owned-app");
        alice.start();
        Session s = alice.createSession(false, Session.AUTO_ACKNOWLEDGE);
        TopicSubscriber sub = s.createDurableSubscriber(s.createTopic(topic), "orders");
        check(drain(sub).equals(List.of("for alice")), "alice's subscription kept what was published");
        sub.close();
        s.unsubscribe("orders");
        alice.close();
        Connection now = factory(url).createConnection("bob", "hunter2-bob");
        now.setClientID("owned-app");
        now.start();
        now.createSession(false, Session.AUTO_ACKNOWLEDGE);
        now.close();
        System.out.println("ok with alice's subscriptions gone, bob may use the client id");
    }

    /**
     * Consumer priority as a JMS program sets it, with destination options:
     * the consumer of priority 9 takes what its prefetch of 3 holds, the one
     * of priority 1 the rest.
     */
    static void consumerPriority(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer low = s.createConsumer(s.createQueue("features.priority?consumer.priority=1"));
        MessageConsumer high = s.createConsumer(
                s.createQueue("features.priority?consumer.priority=9&consumer.prefetchSize=3"));
        MessageProducer p = s.createProducer(s.createQueue("features.priority"));
        for (int i = 0; i < 10; i++) {
            p.send(s.createTextMessage("m" + i));
        }
        List<String> highGot = drain(high);
        List<String> lowGot = drain(low);
        check(highGot.equals(List.of("m0", "m1", "m2")), "priority 9 took its window first: " + highGot);
        check(lowGot.equals(List.of("m3", "m4", "m5", "m6", "m7", "m8", "m9")), "priority 1 the rest: " + lowGot);
        c.close();
    }

    /**
     * Across a network of brokers: 200 persistent messages sent to the
     * producer's broker, with typed properties, as JMS sends them.
     */
    static void networkSend(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer p = s.createProducer(s.createQueue("features.network"));
        for (int i = 0; i < 200; i++) {
            TextMessage m = s.createTextMessage("n" + i);
            m.setIntProperty("n", i);
            m.setJMSCorrelationID("c" + i);
            m.setJMSType("order");
            p.send(m);
        }
        System.out.println("ok sent 200 to the producer's broker");
        c.close();
    }

    /**
     * On the consumer's broker: a consumer whose selector compares the int
     * property gets exactly the upper half, in order, typed as sent; then a
     * consumer without one gets the rest. The link forwards on demand, with
     * the consumers' selectors.
     */
    static void networkReceive(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        Queue q = s.createQueue("features.network");
        MessageConsumer upper = s.createConsumer(q, "n >= 100");
        List<String> got = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            Message m = upper.receive(WAIT_MS);
            check(m != null, "message " + i + " of the upper half came");
            check(m.getIntProperty("n") == 100 + i && m.getObjectProperty("n") instanceof Integer,
                    "an int property stays an int");
            check(("c" + (100 + i)).equals(m.getJMSCorrelationID()) && "order".equals(m.getJMSType()),
                    "JMS headers as sent");
            check(m.getJMSDeliveryMode() == DeliveryMode.PERSISTENT, "persistent as sent");
            got.add(text(m));
            m.acknowledge();
        }
        check(upper.receive(NOTHING_MS) == null, "nothing else matched the selector");
        upper.close();
        MessageConsumer rest = s.createConsumer(q);
        List<String> lower = new ArrayList<>();
        for (Message m = rest.receive(WAIT_MS); m != null; m = rest.receive(NOTHING_MS)) {
            lower.add(text(m));
            m.acknowledge();
        }
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            expected.add("n" + i);
        }
        check(lower.equals(expected), "the rest came to the consumer without a selector, in order, once");
        c.close();
    }

    public static void main(String[] args) {
        try {
            run(args[0], args[1]);
        } catch (Throwable e) {
            // The client's threads would keep the JVM alive past an exception.
            e.printStackTrace();
            System.out.println("FAIL " + e);
            System.exit(1);
        }
        System.exit(0);
    }

    static void run(String url, String check) throws Exception {
        switch (check) {
            case "types": types(url); break;
            case "types-send": typesSend(url); break;
            case "types-receive": typesReceive(url); break;
            case "ack-auto": ackAuto(url); break;
            case "ack-client": ackClient(url); break;
            case "ack-dups-ok": ackDupsOk(url); break;
            case "ack-individual": ackIndividual(url); break;
            case "transactions": transactions(url); break;
            case "selectors-queue": selectorsQueue(url); break;
            case "selectors-topic": selectorsTopic(url); break;
            case "durable": durable(url); break;
            case "durable-offline": durableOffline(url); break;
            case "durable-receive": durableReceive(url); break;
            case "durable-gone": durableGone(url); break;
            case "wildcards": wildcards(url); break;
            case "priority": priority(url); break;
            case "expiry": expiry(url); break;
            case "advisories": advisories(url); break;
            case "producer-advisories": producerAdvisories(url); break;
            case "dlq": dlq(url); break;
            case "non-persistent": nonPersistent(url); break;
            case "non-persistent-backlog": nonPersistentBacklog(url); break;
            case "login": login(url); break;
            case "network-send": networkSend(url); break;
            case "network-receive": networkReceive(url); break;
            case "consumer-priority": consumerPriority(url); break;
            case "client-id-owner": clientIdOwner(url, false); break;
            case "client-id-owner-after": clientIdOwner(url, true); break;
            case "permissions": permissions(url, System.getProperty("hawser.user"), System.getProperty("hawser.password"),
                    System.getProperty("hawser.dests").split(",")); break;
            default:
                System.out.println("FAIL unknown check " + check);
                System.exit(2);
        }
    }
}
