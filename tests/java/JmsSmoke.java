// A JMS program on ActiveMQ's own client (Debian's libactivemq-java), run by
// tests/python/test_openwire.py against a Hawser broker: it must work without
// a changed line. Prints one line per check and exits 1 on the first failure.
//
//   java -cp "$CP:classes" JmsSmoke <broker url> <check>
//
// Checks:
//   send-receive   persistent text messages with typed properties and JMS
//                  fields to a queue, received in order by a second connection
//   ack-modes      CLIENT_ACKNOWLEDGE: an unacknowledged message comes back
//                  after its consumer's connection closes, marked redelivered
//   request-reply  a requester's temporary queue as JMSReplyTo, answered by a
//                  responder on another connection (which must have heard of
//                  the queue through the broker's advisories), then deleted
//   late-responder the same, the responder connecting after the temporary queue
//                  was made (it hears of it when its advisory consumer subscribes)
//   browse         a QueueBrowser sees what a queue holds without taking it
//   pull           prefetch 0 (jms.prefetchPolicy.all=0): each receive pulls one
//                  message; receive(timeout) and receiveNoWait() on an empty
//                  queue return null instead of waiting forever
//   late-session   opens a connection, waits 2 s (its ConnectionInfo goes out
//                  only with the first session), then sends and receives
//   groups         messages of one JMSXGroupID all go to one of two consumers, in order
//   composite      a send to queue "a,b,topic://t" reaches both queues and the
//                  topic's subscriber; a consumer of a composite of queues is
//                  refused with a JMSException (not supported yet)
//   learn-peers    (with a failover: URL naming one broker) sends "before", says
//                  "ready", waits for a line on stdin, sends "after" (after the
//                  broker it knew is gone: only the peer it was told of is left)
//                  and receives both
//   rebalanced <port> (with a failover: URL naming one broker, whose
//                  ConnectionControl asks for a rebalance) waits until the client
//                  is connected to the broker on <port>, then sends "rebalanced"
//                  to jms.rebalance there
//   producer-window asynchronous sends with jms.producerWindowSize=65536 (in the
//                  URL the test gives): the producer stops after 64 KiB unless the
//                  broker gives the room back with ProducerAcks; 2,000 of 1 KiB go
//   interop        receives the message a STOMP client sent to interop.to-jms
//                  (text, a string property, a correlation id) and answers on
//                  interop.to-stomp with a typed property

import java.util.Enumeration;

import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Queue;
import javax.jms.Session;
import javax.jms.TextMessage;

import org.apache.activemq.ActiveMQConnectionFactory;

public class JmsSmoke {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL " + what);
            System.exit(1);
        }
        System.out.println("ok " + what);
    }

    static Connection connect(String url) throws JMSException {
        Connection c = new ActiveMQConnectionFactory(url).createConnection();
        c.start();
        return c;
    }

    static void sendReceive(String url) throws JMSException {
        int n = 20;
        Connection pc = connect(url);
        Session ps = pc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = ps.createQueue("jms.smoke");
        Queue replies = ps.createQueue("jms.smoke.replies");
        MessageProducer p = ps.createProducer(q);
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        for (int i = 0; i < n; i++) {
            TextMessage m = ps.createTextMessage("hello " + i);
            m.setIntProperty("n", i);
            m.setBooleanProperty("even", i % 2 == 0);
            m.setDoubleProperty("half", i / 2.0);
            m.setStringProperty("who", "jms");
            m.setJMSCorrelationID("corr-" + i);
            m.setJMSType("greeting");
            m.setJMSReplyTo(replies);
            p.send(m);
        }
        check(true, "sent " + n + " persistent messages");
        pc.close();

        Connection cc = connect(url);
        Session cs = cc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer consumer = cs.createConsumer(cs.createQueue("jms.smoke"));
        for (int i = 0; i < n; i++) {
            Message m = consumer.receive(10000);
            check(m instanceof TextMessage, "message " + i + " is a TextMessage");
            TextMessage t = (TextMessage) m;
            check(("hello " + i).equals(t.getText()), "body " + i + ": " + t.getText());
            check(t.getIntProperty("n") == i, "int property " + i);
            check(t.getBooleanProperty("even") == (i % 2 == 0), "boolean property " + i);
            check(t.getDoubleProperty("half") == i / 2.0, "double property " + i);
            check("jms".equals(t.getStringProperty("who")), "string property " + i);
            check(("corr-" + i).equals(t.getJMSCorrelationID()), "correlation id " + i);
            check("greeting".equals(t.getJMSType()), "type " + i);
            check(replies.equals(t.getJMSReplyTo()), "reply-to " + i + ": " + t.getJMSReplyTo());
            check(t.getJMSDeliveryMode() == DeliveryMode.PERSISTENT, "persistent " + i);
        }
        check(consumer.receive(500) == null, "nothing more");
        cc.close();
    }

    static void ackModes(String url) throws JMSException {
        Connection pc = connect(url);
        Session ps = pc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        ps.createProducer(ps.createQueue("jms.acks")).send(ps.createTextMessage("once"));
        pc.close();

        Connection c1 = connect(url);
        Session s1 = c1.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        Message first = s1.createConsumer(s1.createQueue("jms.acks")).receive(10000);
        check(first != null && !first.getJMSRedelivered(), "delivered, not yet redelivered");
        c1.close();

        Connection c2 = connect(url);
        Session s2 = c2.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        MessageConsumer consumer = s2.createConsumer(s2.createQueue("jms.acks"));
        Message again = consumer.receive(10000);
        check(again != null && again.getJMSRedelivered(), "unacknowledged message redelivered");
        again.acknowledge();
        c2.close();

        Connection c3 = connect(url);
        Session s3 = c3.createSession(false, Session.AUTO_ACKNOWLEDGE);
        check(s3.createConsumer(s3.createQueue("jms.acks")).receive(500) == null,
                "acknowledged message gone");
        c3.close();
    }

    /**
     * With lateResponder the responder connects only after the temporary queue
     * exists: it can reply only if the broker tells a new advisory subscriber
     * of the temporary destinations that already exist.
     */
    static void requestReply(String url, boolean lateResponder) throws Exception {
        Connection responder = lateResponder ? null : connect(url);

        Connection requester = connect(url);
        Session qs = requester.createSession(false, Session.AUTO_ACKNOWLEDGE);
        javax.jms.TemporaryQueue inbox = qs.createTemporaryQueue();
        MessageConsumer answers = qs.createConsumer(inbox);
        TextMessage request = qs.createTextMessage("ping");
        request.setJMSReplyTo(inbox);
        request.setJMSCorrelationID("req-1");
        qs.createProducer(qs.createQueue("jms.requests")).send(request);

        if (responder == null) {
            responder = connect(url);
        }
        Session rs = responder.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer requests = rs.createConsumer(rs.createQueue("jms.requests"));
        MessageProducer replies = rs.createProducer(null);

        Message got = requests.receive(10000);
        check(got != null, "request received");
        check(inbox.equals(got.getJMSReplyTo()), "reply-to is the temporary queue");
        TextMessage reply = rs.createTextMessage("pong");
        reply.setJMSCorrelationID(got.getJMSCorrelationID());
        // Refused client-side if the responder never heard of the queue.
        replies.send(got.getJMSReplyTo(), reply);
        check(true, "reply sent to another connection's temporary queue");

        Message answer = answers.receive(10000);
        check(answer instanceof TextMessage && "pong".equals(((TextMessage) answer).getText()),
                "reply received");
        check("req-1".equals(answer.getJMSCorrelationID()), "correlated");
        answers.close();
        inbox.delete();
        check(true, "temporary queue deleted");
        requester.close();
        responder.close();
    }

    static void browse(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("jms.browsed");
        MessageProducer p = s.createProducer(q);
        for (int i = 0; i < 3; i++) {
            p.send(s.createTextMessage("b" + i));
        }
        Enumeration<?> e = s.createBrowser(q).getEnumeration();
        int seen = 0;
        while (e.hasMoreElements()) {
            TextMessage m = (TextMessage) e.nextElement();
            check(("b" + seen).equals(m.getText()), "browsed " + m.getText());
            seen++;
        }
        check(seen == 3, "browsed all three, then the browse ended");
        MessageConsumer consumer = s.createConsumer(q);
        for (int i = 0; i < 3; i++) {
            Message m = consumer.receive(10000);
            check(m != null, "still there after browsing: " + i);
        }
        c.close();
    }

    static void pull(String url) throws JMSException {
        String sep = url.contains("?") ? "&" : "?";
        Connection c = connect(url + sep + "jms.prefetchPolicy.all=0");
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("jms.pulled");
        MessageConsumer consumer = s.createConsumer(q);
        check(consumer.receiveNoWait() == null, "receiveNoWait on an empty queue: null");
        long t0 = System.currentTimeMillis();
        check(consumer.receive(300) == null, "receive(300) on an empty queue: null");
        check(System.currentTimeMillis() - t0 < 5000, "and it came back");
        MessageProducer p = s.createProducer(q);
        for (int i = 0; i < 3; i++) {
            p.send(s.createTextMessage("p" + i));
        }
        for (int i = 0; i < 3; i++) {
            Message m = consumer.receive(5000);
            check(m instanceof TextMessage && ("p" + i).equals(((TextMessage) m).getText()),
                    "pulled p" + i);
        }
        // A second consumer on the queue gets what the first did not pull.
        p.send(s.createTextMessage("left"));
        Session s2 = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Message other = s2.createConsumer(q).receive(5000);
        check(other != null && "left".equals(((TextMessage) other).getText()),
                "nothing was held for the puller");
        c.close();
    }

    static void lateSession(String url) throws Exception {
        Connection c = new ActiveMQConnectionFactory(url).createConnection();
        Thread.sleep(2000);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        c.start();
        Queue q = s.createQueue("jms.late");
        s.createProducer(q).send(s.createTextMessage("late"));
        Message m = s.createConsumer(q).receive(10000);
        check(m != null, "a session opened long after the connection works");
        c.close();
    }

    static void groups(String url) throws JMSException {
        Connection c = connect(url);
        Session s1 = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Session s2 = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s1.createQueue("jms.groups");
        MessageConsumer[] consumers = {s1.createConsumer(q), s2.createConsumer(q)};
        MessageProducer p = s1.createProducer(q);
        int perGroup = 10;
        for (int i = 0; i < perGroup; i++) {
            for (String g : new String[] {"g1", "g2", "g3"}) {
                TextMessage m = s1.createTextMessage(g + ":" + i);
                m.setStringProperty("JMSXGroupID", g);
                p.send(m);
            }
        }
        java.util.Map<String, Integer> owner = new java.util.HashMap<>();
        java.util.Map<String, Integer> next = new java.util.HashMap<>();
        int received = 0;
        for (int attempt = 0; attempt < 200 && received < 3 * perGroup; attempt++) {
            for (int k = 0; k < 2; k++) {
                Message m = consumers[k].receive(100);
                if (m == null) {
                    continue;
                }
                String[] parts = ((TextMessage) m).getText().split(":");
                String g = parts[0];
                check(g.equals(m.getStringProperty("JMSXGroupID")), "JMSXGroupID kept: " + g);
                owner.putIfAbsent(g, k);
                check(owner.get(g) == k, g + " stays with consumer " + owner.get(g));
                int i = Integer.parseInt(parts[1]);
                check(i == next.getOrDefault(g, 0), g + " in order: " + i);
                next.put(g, i + 1);
                received++;
            }
        }
        check(received == 3 * perGroup, "all grouped messages received: " + received);
        c.close();
    }

    static void interop(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Message m = s.createConsumer(s.createQueue("interop.to-jms")).receive(10000);
        check(m instanceof TextMessage, "a STOMP frame without content-length is a TextMessage");
        TextMessage t = (TextMessage) m;
        check("from stomp".equals(t.getText()), "text: " + t.getText());
        check("blue".equals(t.getStringProperty("color")), "string property from a header");
        check("c1".equals(t.getJMSCorrelationID()), "correlation-id is JMSCorrelationID");
        check(t.getJMSDeliveryMode() == DeliveryMode.PERSISTENT, "persistent:true is PERSISTENT");
        TextMessage reply = s.createTextMessage("from jms");
        reply.setIntProperty("n", 7);
        reply.setJMSCorrelationID("c2");
        s.createProducer(s.createQueue("interop.to-stomp")).send(reply);
        check(true, "answered");
        c.close();
    }

    static void composite(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer t = s.createConsumer(s.createTopic("jms.comp.t"));
        s.createProducer(s.createQueue("jms.comp.a,jms.comp.b,topic://jms.comp.t"))
                .send(s.createTextMessage("to all"));
        for (String q : new String[] {"jms.comp.a", "jms.comp.b"}) {
            Message m = s.createConsumer(s.createQueue(q)).receive(5000);
            check(m instanceof TextMessage && "to all".equals(((TextMessage) m).getText()),
                    "queue " + q + " got its copy");
        }
        Message m = t.receive(5000);
        check(m instanceof TextMessage, "the topic's subscriber got its copy");
        try {
            s.createConsumer(s.createQueue("jms.comp.a,jms.comp.b"));
            check(false, "a consumer of a composite of queues is refused");
        } catch (JMSException e) {
            check(true, "a consumer of a composite of queues is refused: " + e.getMessage());
        }
        c.close();
    }

    static void learnPeers(String url) throws Exception {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("jms.peers");
        MessageProducer p = s.createProducer(q);
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        p.send(s.createTextMessage("before"));
        System.out.println("ready");
        System.out.flush();
        new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
        p.send(s.createTextMessage("after"));
        check(true, "a send after the broker it was given went away");
        MessageConsumer consumer = s.createConsumer(q);
        java.util.List<String> got = new java.util.ArrayList<>();
        for (Message m = consumer.receive(10000); m != null && got.size() < 2; m = consumer.receive(2000)) {
            got.add(((TextMessage) m).getText());
        }
        check(got.equals(java.util.List.of("before", "after")), "both messages arrive: " + got);
        c.close();
    }

    static void rebalanced(String url, int port) throws Exception {
        Connection c = connect(url);
        org.apache.activemq.transport.failover.FailoverTransport failover =
            ((org.apache.activemq.ActiveMQConnection) c).getTransport()
                .narrow(org.apache.activemq.transport.failover.FailoverTransport.class);
        check(failover != null, "a failover transport");
        // The ConnectionControl comes right after the connection; moving takes
        // a reconnect. Bounded: 200 looks 50 ms apart.
        java.net.URI at = failover.getConnectedTransportURI();
        for (int i = 0; i < 200 && (at == null || at.getPort() != port); i++) {
            Thread.sleep(50);
            at = failover.getConnectedTransportURI();
        }
        check(at != null && at.getPort() == port, "moved to the broker on port " + port + " (at " + at + ")");
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer p = s.createProducer(s.createQueue("jms.rebalance"));
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        p.send(s.createTextMessage("rebalanced"));
        check(true, "sent after the move");
        c.close();
    }

    static void producerWindow(String url) throws JMSException {
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue("jms.window");
        MessageProducer p = s.createProducer(q);
        p.setDeliveryMode(DeliveryMode.NON_PERSISTENT);
        byte[] body = new byte[1024];
        int n = 2000;
        for (int i = 0; i < n; i++) {
            javax.jms.BytesMessage m = s.createBytesMessage();
            m.writeBytes(body);
            m.setIntProperty("i", i);
            p.send(m);
        }
        check(true, "sent " + n + " asynchronous messages through a 64 KiB window");
        MessageConsumer consumer = s.createConsumer(q);
        int got = 0;
        while (got < n && consumer.receive(5000) != null) {
            got++;
        }
        check(got == n, "all of them arrive (" + got + ")");
        c.close();
    }

    /** Connects as client id "held", says so, and stays until stdin closes. */
    static void hold(String url) throws Exception {
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        Connection c = f.createConnection();
        c.setClientID("held");
        c.start();
        System.out.println("connected");
        System.out.flush();
        while (System.in.read() != -1) {
        }
        c.close();
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        switch (args[1]) {
            case "send-receive":
                sendReceive(url);
                break;
            case "ack-modes":
                ackModes(url);
                break;
            case "request-reply":
                requestReply(url, false);
                break;
            case "late-responder":
                requestReply(url, true);
                break;
            case "browse":
                browse(url);
                break;
            case "pull":
                pull(url);
                break;
            case "late-session":
                lateSession(url);
                break;
            case "groups":
                groups(url);
                break;
            case "interop":
                interop(url);
                break;
            case "composite":
                composite(url);
                break;
            case "learn-peers":
                learnPeers(url);
                break;
            case "rebalanced":
                rebalanced(url, Integer.parseInt(args[2]));
                break;
            case "producer-window":
                producerWindow(url);
                break;
            case "hold":
                hold(url);
                break;
            default:
                System.out.println("FAIL unknown check " + args[1]);
                System.exit(2);
        }
        System.exit(0);
    }
}
