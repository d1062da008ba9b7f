// Writes OpenWire frames with ActiveMQ's own marshaller (activemq-client 5.17), for
// tests/java_fixtures.rs. The output is committed, so the Rust tests need no Java; rerun this
// only to change the fixtures:
//
//   CP=$(echo /usr/share/java/{activemq-client,activemq-openwire-legacy,geronimo-jms_1.1_spec,hawtbuf,slf4j-api,slf4j-nop}.jar | tr ' ' :)
//   javac -cp "$CP" -d /tmp/owfix crates/hawser-openwire/tests/java/WriteFixtures.java
//   java -cp "$CP:/tmp/owfix" WriteFixtures crates/hawser-openwire/tests/fixtures/java
//
// Each file is one stream of frames written by one OpenWireFormat (so cache indexes carry
// over from frame to frame); manifest.txt lists each file's frame types in order. Every
// value is fixed (no clock, no host name, explicit stack frames) so reruns give the same
// bytes. The values are mirrored in tests/java_fixtures.rs.

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.activemq.command.*;
import org.apache.activemq.openwire.OpenWireFormat;
import org.apache.activemq.openwire.OpenWireFormatFactory;

public class WriteFixtures {

    static final String CONNECTION = "ID:fixture-61616-1700000000000-1:1";

    public static void main(String[] args) throws Exception {
        File dir = new File(args[0]);
        dir.mkdirs();
        try (PrintWriter manifest = new PrintWriter(new File(dir, "manifest.txt"), "UTF-8")) {
            for (int version = 1; version <= 12; version++) {
                for (int mode = 0; mode < 16; mode++) {
                    // Every mode at version 12; two opposite ones at older versions.
                    if (version < 12 && mode != 0 && mode != 0b1011) {
                        continue;
                    }
                    boolean tight = (mode & 1) != 0;
                    boolean cache = (mode & 2) != 0;
                    boolean noPrefix = (mode & 4) != 0;
                    boolean stack = (mode & 8) != 0;
                    OpenWireFormat format = new OpenWireFormat(version);
                    format.setTightEncodingEnabled(tight);
                    format.setCacheEnabled(cache);
                    format.setSizePrefixDisabled(noPrefix);
                    format.setStackTraceEnabled(stack);
                    String name = String.format("v%02d-%s-%s-%s-%s.bin", version,
                            tight ? "tight" : "loose", cache ? "cache" : "nocache",
                            noPrefix ? "noprefix" : "prefix", stack ? "stack" : "nostack");
                    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                    DataOutputStream out = new DataOutputStream(bytes);
                    List<String> types = new ArrayList<>();
                    for (DataStructure command : commands(version)) {
                        format.marshal(command, out);
                        types.add(command == null ? "0" : Byte.toString(command.getDataStructureType()));
                    }
                    out.flush();
                    try (FileOutputStream file = new FileOutputStream(new File(dir, name))) {
                        file.write(bytes.toByteArray());
                    }
                    manifest.println(name + " " + String.join(",", types));
                }
            }
        }
    }

    static ConnectionId connectionId() {
        return new ConnectionId(CONNECTION);
    }

    static SessionId sessionId() {
        return new SessionId(connectionId(), 1);
    }

    static ProducerId producerId() {
        return new ProducerId(sessionId(), 2);
    }

    static ConsumerId consumerId() {
        return new ConsumerId(sessionId(), 3);
    }

    static MessageId messageId(long sequence) {
        return new MessageId(producerId(), sequence);
    }

    static Throwable failure() {
        IllegalStateException cause = new IllegalStateException("inner \u00e9");
        cause.setStackTrace(new StackTraceElement[] {
            new StackTraceElement("com.example.Store", "write", null, -2),
        });
        IOException error = new IOException("boom", cause);
        error.setStackTrace(new StackTraceElement[] {
            new StackTraceElement("com.example.Listener", "onMessage", "Listener.java", 42),
            new StackTraceElement("org.apache.activemq.ActiveMQMessageConsumer", "dispatch", "ActiveMQMessageConsumer.java", 1400),
        });
        return error;
    }

    static XATransactionId xid(int n) {
        XATransactionId xid = new XATransactionId();
        xid.setFormatId(0x1234);
        xid.setGlobalTransactionId(new byte[] {1, 2, 3, (byte) n});
        xid.setBranchQualifier(new byte[] {9, (byte) n});
        return xid;
    }

    static ActiveMQTextMessage textMessage(boolean bigString) throws Exception {
        ActiveMQTextMessage message = new ActiveMQTextMessage();
        message.setProducerId(producerId());
        message.setDestination(new ActiveMQQueue("orders"));
        message.setMessageId(messageId(1));
        message.setText("h\u00e9llo \u0000 \uD83D\uDE00");
        message.setPersistent(true);
        message.setPriority((byte) 7);
        message.setTimestamp(1700000000123L);
        message.setExpiration(1700000060123L);
        message.setCorrelationId("corr-1");
        message.setType("order");
        message.setGroupID("group-a");
        message.setGroupSequence(3);
        message.setReplyTo(new ActiveMQTempQueue(CONNECTION + ":1"));
        message.setBooleanProperty("bool", true);
        message.setByteProperty("byte", (byte) -3);
        message.setShortProperty("short", (short) -300);
        message.setIntProperty("int", 70000);
        message.setLongProperty("long", -5000000000L);
        message.setFloatProperty("float", 1.5f);
        message.setDoubleProperty("double", -2.25);
        message.setStringProperty("string", "v\u00e9");
        if (bigString) {
            // Long enough (8,191 UTF-16 units) for Java's BIG_STRING form.
            message.setStringProperty("big", repeat('x', 8191));
        }
        message.setProperty("char", Character.valueOf('c'));
        message.setProperty("bytes", new byte[] {0, 1, (byte) 255});
        Map<String, Object> map = new HashMap<>();
        map.put("n", 1);
        message.setProperty("map", map);
        message.setProperty("list", Arrays.asList("a", 2L));
        message.setProperty("null", null);
        return message;
    }

    static String repeat(char c, int n) {
        char[] chars = new char[n];
        Arrays.fill(chars, c);
        return new String(chars);
    }

    static List<DataStructure> commands(int version) throws Exception {
        List<DataStructure> commands = new ArrayList<>();

        // The client's own WireFormatInfo, as its factory builds it.
        commands.add(((OpenWireFormat) new OpenWireFormatFactory().createWireFormat()).getPreferedWireFormatInfo());

        BrokerInfo peer = new BrokerInfo();
        peer.setBrokerId(new BrokerId("ID:peer-1"));
        peer.setBrokerURL("tcp://peer:61616");
        BrokerInfo broker = new BrokerInfo();
        broker.setBrokerId(new BrokerId("ID:broker-1"));
        broker.setBrokerURL("tcp://broker:61616");
        broker.setBrokerName("hawser");
        broker.setPeerBrokerInfos(new BrokerInfo[] {peer});
        broker.setFaultTolerantConfiguration(true);
        broker.setConnectionId(77);
        broker.setNetworkProperties("a=b");
        commands.add(broker);

        ConnectionInfo connection = new ConnectionInfo(connectionId());
        connection.setCommandId(1);
        connection.setResponseRequired(true);
        connection.setClientId("client-1");
        connection.setUserName("user");
        connection.setPassword("secret");
        connection.setBrokerPath(new BrokerId[] {new BrokerId("ID:broker-1")});
        connection.setFaultTolerant(true);
        connection.setClientIp("tcp://10.0.0.1:5000");
        commands.add(connection);

        SessionInfo session = new SessionInfo(connection, 1);
        session.setCommandId(2);
        session.setResponseRequired(true);
        commands.add(session);

        ProducerInfo producer = new ProducerInfo(producerId());
        producer.setCommandId(3);
        producer.setResponseRequired(true);
        producer.setDestination(new ActiveMQQueue("orders"));
        producer.setWindowSize(65536);
        producer.setDispatchAsync(true);
        commands.add(producer);

        ConsumerInfo consumer = new ConsumerInfo(consumerId());
        consumer.setCommandId(4);
        consumer.setResponseRequired(true);
        consumer.setDestination(new ActiveMQTopic("prices.>"));
        consumer.setPrefetchSize(1000);
        consumer.setMaximumPendingMessageLimit(-1);
        consumer.setSelector("price > 10 AND region = 'EU'");
        consumer.setClientId("client-1");
        consumer.setSubscriptionName("durable-sub");
        consumer.setNoLocal(true);
        consumer.setExclusive(true);
        consumer.setPriority((byte) -5);
        consumer.setNetworkConsumerPath(new ConsumerId[] {consumerId()});
        commands.add(consumer);

        DestinationInfo temp = new DestinationInfo(connectionId(), DestinationInfo.ADD_OPERATION_TYPE,
                new ActiveMQTempQueue(CONNECTION + ":1"));
        temp.setCommandId(5);
        temp.setResponseRequired(true);
        commands.add(temp);

        LocalTransactionId local = new LocalTransactionId(connectionId(), 9);
        TransactionInfo begin = new TransactionInfo(connectionId(), local, TransactionInfo.BEGIN);
        begin.setCommandId(6);
        commands.add(begin);

        commands.add(textMessage(version == 12));

        ActiveMQBytesMessage bytesMessage = new ActiveMQBytesMessage();
        bytesMessage.setProducerId(producerId());
        bytesMessage.setDestination(new ActiveMQQueue("orders"));
        bytesMessage.setMessageId(messageId(2));
        bytesMessage.setTransactionId(local);
        bytesMessage.writeBytes(new byte[] {1, 2, 3});
        bytesMessage.writeInt(-1);
        bytesMessage.reset(); // stores the body, as a send does
        bytesMessage.setCommandId(7);
        commands.add(bytesMessage);

        ActiveMQMapMessage mapMessage = new ActiveMQMapMessage();
        mapMessage.setProducerId(producerId());
        mapMessage.setDestination(new ActiveMQQueue("orders"));
        mapMessage.setMessageId(messageId(3));
        mapMessage.setString("k", "v");
        mapMessage.setInt("n", 5);
        commands.add(mapMessage);

        ActiveMQStreamMessage streamMessage = new ActiveMQStreamMessage();
        streamMessage.setProducerId(producerId());
        streamMessage.setDestination(new ActiveMQQueue("orders"));
        streamMessage.setMessageId(messageId(4));
        streamMessage.writeString("s");
        streamMessage.writeLong(6L);
        streamMessage.reset();
        commands.add(streamMessage);

        ActiveMQObjectMessage objectMessage = new ActiveMQObjectMessage();
        objectMessage.setProducerId(producerId());
        objectMessage.setDestination(new ActiveMQQueue("orders"));
        objectMessage.setMessageId(messageId(5));
        objectMessage.setObject("a serialized string");
        commands.add(objectMessage);

        ActiveMQMessage advisory = new ActiveMQMessage();
        advisory.setProducerId(producerId());
        advisory.setDestination(new ActiveMQTopic("ActiveMQ.Advisory.Consumer.Topic.prices.>"));
        advisory.setMessageId(messageId(6));
        advisory.setDataStructure(consumer);
        advisory.setOriginalDestination(new ActiveMQQueue("orders"));
        advisory.setTargetConsumerId(consumerId());
        advisory.setBrokerPath(new BrokerId[] {new BrokerId("ID:broker-1")});
        advisory.setCluster(new BrokerId[] {new BrokerId("ID:peer-1")});
        advisory.setUserID("user");
        advisory.setArrival(5);
        advisory.setBrokerInTime(6);
        advisory.setBrokerOutTime(7);
        advisory.setDroppable(true);
        advisory.setJMSXGroupFirstForConsumer(true);
        advisory.setRedeliveryCounter(2);
        commands.add(advisory);

        if (version >= 3) {
            ActiveMQBlobMessage blob = new ActiveMQBlobMessage();
            blob.setProducerId(producerId());
            blob.setDestination(new ActiveMQQueue("orders"));
            blob.setMessageId(messageId(7));
            blob.setRemoteBlobUrl("http://blobs/1");
            blob.setMimeType("application/pdf");
            commands.add(blob);
        }

        MessageDispatch dispatch = new MessageDispatch();
        dispatch.setConsumerId(consumerId());
        dispatch.setDestination(new ActiveMQQueue("orders"));
        dispatch.setMessage(textMessage(false));
        dispatch.setRedeliveryCounter(1);
        commands.add(dispatch);

        MessageDispatch empty = new MessageDispatch();
        empty.setConsumerId(consumerId());
        commands.add(empty);

        MessageAck ack = new MessageAck();
        ack.setCommandId(8);
        ack.setDestination(new ActiveMQQueue("orders"));
        ack.setConsumerId(consumerId());
        ack.setTransactionId(local);
        ack.setAckType(MessageAck.STANDARD_ACK_TYPE);
        ack.setFirstMessageId(messageId(1));
        ack.setLastMessageId(messageId(4));
        ack.setMessageCount(4);
        commands.add(ack);

        MessageAck poison = new MessageAck();
        poison.setDestination(new ActiveMQQueue("orders"));
        poison.setConsumerId(consumerId());
        poison.setAckType(MessageAck.POISON_ACK_TYPE);
        poison.setLastMessageId(messageId(5));
        poison.setMessageCount(1);
        poison.setPoisonCause(failure());
        commands.add(poison);

        if (version >= 2) {
            MessagePull pull = new MessagePull();
            pull.setConsumerId(consumerId());
            pull.setDestination(new ActiveMQQueue("orders"));
            pull.setTimeout(-1);
            pull.setCorrelationId("pull-1");
            pull.setMessageId(messageId(9));
            commands.add(pull);
        }
        if (version >= 3) {
            commands.add(new ProducerAck(producerId(), 4096));
        }

        TransactionInfo prepare = new TransactionInfo(connectionId(), xid(1), TransactionInfo.PREPARE);
        prepare.setCommandId(9);
        prepare.setResponseRequired(true);
        commands.add(prepare);
        TransactionInfo recover = new TransactionInfo(connectionId(), null, TransactionInfo.RECOVER);
        recover.setCommandId(10);
        recover.setResponseRequired(true);
        commands.add(recover);

        RemoveInfo removeConsumer = new RemoveInfo(consumerId());
        removeConsumer.setLastDeliveredSequenceId(-2);
        removeConsumer.setCommandId(11);
        commands.add(removeConsumer);
        commands.add(new RemoveInfo(connectionId()));

        RemoveSubscriptionInfo unsubscribe = new RemoveSubscriptionInfo();
        unsubscribe.setConnectionId(connectionId());
        unsubscribe.setClientId("client-1");
        unsubscribe.setSubscriptionName("durable-sub");
        commands.add(unsubscribe);

        Response response = new Response();
        response.setCorrelationId(1);
        commands.add(response);
        ExceptionResponse failed = new ExceptionResponse(failure());
        failed.setCorrelationId(4);
        commands.add(failed);
        DataResponse data = new DataResponse();
        data.setCorrelationId(5);
        data.setData(xid(2));
        commands.add(data);
        DataArrayResponse array = new DataArrayResponse();
        array.setCorrelationId(10);
        array.setData(new DataStructure[] {xid(1), xid(2)});
        commands.add(array);
        IntegerResponse vote = new IntegerResponse(3);
        vote.setCorrelationId(9);
        commands.add(vote);

        KeepAliveInfo keepAlive = new KeepAliveInfo();
        keepAlive.setResponseRequired(true);
        commands.add(keepAlive);
        commands.add(new FlushCommand());
        ControlCommand control = new ControlCommand();
        control.setCommand("shutdown");
        commands.add(control);

        ConnectionControl connectionControl = new ConnectionControl();
        connectionControl.setFaultTolerant(true);
        connectionControl.setConnectedBrokers("tcp://a:61616,tcp://b:61616");
        connectionControl.setReconnectTo("tcp://b:61616");
        connectionControl.setRebalanceConnection(true);
        connectionControl.setToken(new byte[] {7, 7});
        commands.add(connectionControl);

        ConsumerControl consumerControl = new ConsumerControl();
        consumerControl.setDestination(new ActiveMQQueue("orders"));
        consumerControl.setConsumerId(consumerId());
        consumerControl.setPrefetch(10);
        consumerControl.setStart(true);
        commands.add(consumerControl);

        ConnectionError error = new ConnectionError();
        error.setException(failure());
        error.setConnectionId(connectionId());
        commands.add(error);

        commands.add(new ShutdownInfo());
        commands.add(null);
        return commands;
    }
}
