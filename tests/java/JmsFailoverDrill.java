// A producer or a consumer on ActiveMQ's own client (Debian's libactivemq-java),
// unchanged, for tests/python/test_openwire_master_slave.py: the article's
// failover URI across a master/slave pair whose master is killed again and
// again. It prints what it did, one line per event, so that the test can check
// that nothing confirmed was lost and nothing was delivered twice.
//
//   java -cp "$CP:classes" JmsFailoverDrill produce <url> <queue> <max count> <max seconds>
//   java -cp "$CP:classes" JmsFailoverDrill consume <url> <queue> <max seconds> <idle ms>
//
// produce  persistent TextMessages "1", "2", ... (int property "n" too) from one
//          producer of a non-transacted session: each send() is synchronous
//          (ActiveMQ's default for persistent sends outside a transaction), so
//          "sent N" is printed only once the broker confirmed N. Stops at the
//          count, at the time limit, or when its stdin closes.
// consume  one consumer of an AUTO_ACKNOWLEDGE session (ActiveMQ's default, and
//          its `activemq consumer` tool's) calling receive(): "got N" for every
//          message the application was given. The ack is sent by the client as
//          receive() returns; a broker that loses it to a kill redelivers the
//          message, and the client's own duplicate audit must drop the second
//          copy, so the application sees each message once. Once its stdin
//          closes it drains: it stops after <idle ms> without a message.
//
// Both print "interrupted" and "resumed" as the failover transport loses and
// regains a broker, "error ..." for any exception, and "done ..." at the end.
// Both end within their time limit: a watchdog prints every thread's stack and
// exits 3 if the client is stuck past it (a send that never returns, a close
// that hangs).

import java.io.IOException;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Queue;
import javax.jms.Session;
import javax.jms.TextMessage;

import org.apache.activemq.ActiveMQConnection;
import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.transport.TransportListener;

public class JmsFailoverDrill {
    /** Seconds past the time limit that closing may take before the watchdog ends it all. */
    static final int CLOSE_GRACE_S = 15;

    static final AtomicBoolean stop = new AtomicBoolean();

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    /** Sets `stop` when stdin closes: the test's way of saying "enough". */
    static void watchStdin() {
        Thread t = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                }
            } catch (IOException e) {
                // Closed either way.
            }
            stop.set(true);
        }, "stdin-watch");
        t.setDaemon(true);
        t.start();
    }

    /** Ends the program with a thread dump if it is still running `seconds` from now. */
    static void watchdog(long seconds) {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(seconds * 1000);
            } catch (InterruptedException e) {
                return;
            }
            say("error stuck: still running after " + seconds + " s");
            for (Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
                System.err.println("thread " + e.getKey().getName());
                for (StackTraceElement s : e.getValue()) {
                    System.err.println("    at " + s);
                }
            }
            System.err.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        t.setDaemon(true);
        t.start();
    }

    static Connection connect(String url) throws JMSException {
        ActiveMQConnection c = (ActiveMQConnection) new ActiveMQConnectionFactory(url).createConnection();
        c.setExceptionListener(e -> say("error connection: " + e));
        c.addTransportListener(new TransportListener() {
            public void onCommand(Object command) {
            }

            public void onException(IOException error) {
                say("error transport: " + error);
            }

            public void transportInterupted() {
                say("interrupted");
            }

            public void transportResumed() {
                say("resumed");
            }
        });
        c.start();
        return c;
    }

    static void produce(String url, String queue, int max, long seconds) throws JMSException {
        long deadline = System.currentTimeMillis() + seconds * 1000;
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Queue q = s.createQueue(queue);
        MessageProducer p = s.createProducer(q);
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        int sent = 0;
        for (int n = 1; n <= max && !stop.get() && System.currentTimeMillis() < deadline; n++) {
            TextMessage m = s.createTextMessage(Integer.toString(n));
            m.setIntProperty("n", n);
            try {
                p.send(m);
            } catch (JMSException e) {
                // Not confirmed: n may or may not have been stored. Go on with the next.
                say("error send " + n + ": " + e);
                continue;
            }
            sent++;
            say("sent " + n);
        }
        c.close();
        say("done sent " + sent);
    }

    static void consume(String url, String queue, long seconds, long idleMs) throws JMSException {
        long deadline = System.currentTimeMillis() + seconds * 1000;
        Connection c = connect(url);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer consumer = s.createConsumer(s.createQueue(queue));
        long last = System.currentTimeMillis();
        int got = 0;
        while (System.currentTimeMillis() < deadline) {
            Message m = consumer.receive(100);
            long now = System.currentTimeMillis();
            if (m == null) {
                if (stop.get() && now - last >= idleMs) {
                    break;
                }
                continue;
            }
            last = now;
            if (!(m instanceof TextMessage)) {
                say("error not a TextMessage: " + m);
                continue;
            }
            got++;
            say("got " + ((TextMessage) m).getText() + (m.getJMSRedelivered() ? " redelivered" : ""));
        }
        c.close();
        say("done got " + got);
    }

    public static void main(String[] args) throws Exception {
        watchStdin();
        String mode = args[0];
        String url = args[1];
        String queue = args[2];
        if (mode.equals("produce")) {
            long seconds = Long.parseLong(args[4]);
            watchdog(seconds + CLOSE_GRACE_S);
            produce(url, queue, Integer.parseInt(args[3]), seconds);
        } else if (mode.equals("consume")) {
            long seconds = Long.parseLong(args[3]);
            watchdog(seconds + CLOSE_GRACE_S);
            consume(url, queue, seconds, Long.parseLong(args[4]));
        } else {
            say("error unknown mode " + mode);
            System.exit(2);
        }
        System.exit(0);
    }
}
