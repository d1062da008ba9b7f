// XA transactions through ActiveMQ's own client (Debian's libactivemq-java),
// driven the way a transaction manager drives an XAResource, run by
// tests/python/test_openwire.py against a Hawser broker. Prints one line per
// check and exits 1 on the first failure.
//
//   java -cp "$CP:classes" JmsXa <broker url> <step>
//
// Steps:
//   phases     two-phase commit, one-phase commit, rollback, a read-only
//              branch's vote, and a consumer's acknowledgement inside a
//              prepared branch that is rolled back (the message comes back)
//   prepare    prepares two branches on queue xa.restart and exits without
//              resolving them: "commit-me" sends "kept" and acknowledges
//              "taken"; "roll-me-back" sends "dropped" and acknowledges
//              "returned" (the test put "taken" and "returned" there first)
//   resolve    (after the broker restarted) recover lists both branches;
//              commits one from this new connection, rolls back the other,
//              and checks what the queue then holds

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Queue;
import javax.jms.Session;
import javax.jms.TextMessage;
import javax.jms.XAConnection;
import javax.jms.XASession;
import javax.transaction.xa.XAResource;
import javax.transaction.xa.Xid;

import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.ActiveMQXAConnectionFactory;

public class JmsXa {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL " + what);
            System.exit(1);
        }
        System.out.println("ok " + what);
    }

    /** A transaction branch id as a transaction manager makes one. */
    static final class TestXid implements Xid {
        final byte[] global;
        final byte[] branch;

        TestXid(String global, int branch) {
            this.global = global.getBytes();
            this.branch = new byte[] {(byte) branch};
        }

        public int getFormatId() {
            return 0x4857;
        }

        public byte[] getGlobalTransactionId() {
            return global;
        }

        public byte[] getBranchQualifier() {
            return branch;
        }

        boolean sameAs(Xid other) {
            return other.getFormatId() == getFormatId()
                    && Arrays.equals(other.getGlobalTransactionId(), global)
                    && Arrays.equals(other.getBranchQualifier(), branch);
        }
    }

    static XAConnection xaConnect(String url) throws JMSException {
        XAConnection c = new ActiveMQXAConnectionFactory(url).createXAConnection();
        c.start();
        return c;
    }

    static void send(Session s, String queue, String... bodies) throws JMSException {
        MessageProducer p = s.createProducer(s.createQueue(queue));
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        for (String b : bodies) {
            p.send(s.createTextMessage(b));
        }
        p.close();
    }

    /** Everything the queue holds now, taken with a plain session. */
    static List<String> drain(String url, String queue) throws JMSException {
        Connection c = new ActiveMQConnectionFactory(url).createConnection();
        c.start();
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer consumer = s.createConsumer(s.createQueue(queue));
        List<String> got = new ArrayList<>();
        for (Message m = consumer.receive(2000); m != null; m = consumer.receive(500)) {
            got.add(((TextMessage) m).getText());
        }
        c.close();
        return got;
    }

    static void phases(String url) throws Exception {
        XAConnection c = xaConnect(url);
        XASession s = c.createXASession();
        XAResource xr = s.getXAResource();

        TestXid two = new TestXid("two-phase", 1);
        xr.start(two, XAResource.TMNOFLAGS);
        send(s.getSession(), "xa.phases", "two-phase");
        xr.end(two, XAResource.TMSUCCESS);
        check(drain(url, "xa.phases").isEmpty(), "a branch's send is invisible before commit");
        check(xr.prepare(two) == XAResource.XA_OK, "prepare votes XA_OK");
        check(drain(url, "xa.phases").isEmpty(), "and invisible while prepared");
        xr.commit(two, false);
        check(drain(url, "xa.phases").equals(List.of("two-phase")), "two-phase commit publishes it");

        TestXid one = new TestXid("one-phase", 1);
        xr.start(one, XAResource.TMNOFLAGS);
        send(s.getSession(), "xa.phases", "one-phase");
        xr.end(one, XAResource.TMSUCCESS);
        xr.commit(one, true);
        check(drain(url, "xa.phases").equals(List.of("one-phase")), "one-phase commit publishes it");

        TestXid back = new TestXid("rolled-back", 1);
        xr.start(back, XAResource.TMNOFLAGS);
        send(s.getSession(), "xa.phases", "never");
        xr.end(back, XAResource.TMSUCCESS);
        check(xr.prepare(back) == XAResource.XA_OK, "prepared before the rollback");
        xr.rollback(back);
        check(drain(url, "xa.phases").isEmpty(), "a rolled-back branch's send is discarded");

        TestXid readOnly = new TestXid("read-only", 1);
        xr.start(readOnly, XAResource.TMNOFLAGS);
        xr.end(readOnly, XAResource.TMSUCCESS);
        check(xr.prepare(readOnly) == XAResource.XA_RDONLY, "a branch that did nothing votes XA_RDONLY");

        // An XA connection's sessions are all XA ones: a plain send needs a plain connection.
        Connection other = new ActiveMQConnectionFactory(url).createConnection();
        send(other.createSession(false, Session.AUTO_ACKNOWLEDGE), "xa.acks", "acked-then-rolled-back");
        other.close();
        MessageConsumer consumer = s.getSession().createConsumer(s.getSession().createQueue("xa.acks"));
        TestXid ack = new TestXid("ack", 1);
        xr.start(ack, XAResource.TMNOFLAGS);
        Message m = consumer.receive(5000);
        check(m != null, "an XA session's consumer receives");
        xr.end(ack, XAResource.TMSUCCESS);
        check(xr.prepare(ack) == XAResource.XA_OK, "a branch that acknowledged prepares");
        consumer.close();
        check(drain(url, "xa.acks").isEmpty(), "a prepared branch holds what it acknowledged");
        xr.rollback(ack);
        check(drain(url, "xa.acks").equals(List.of("acked-then-rolled-back")),
                "the rollback gives the message back");
        c.close();
    }

    static void prepare(String url) throws Exception {
        XAConnection c = xaConnect(url);
        XASession s = c.createXASession();
        XAResource xr = s.getXAResource();
        MessageConsumer consumer = s.getSession().createConsumer(s.getSession().createQueue("xa.restart"));
        String[][] branches = {{"commit-me", "kept", "taken"}, {"roll-me-back", "dropped", "returned"}};
        for (String[] b : branches) {
            TestXid xid = new TestXid(b[0], 1);
            xr.start(xid, XAResource.TMNOFLAGS);
            Message m = consumer.receive(5000);
            check(m != null && b[2].equals(((TextMessage) m).getText()), b[0] + " receives " + b[2]);
            send(s.getSession(), "xa.restart", b[1]);
            xr.end(xid, XAResource.TMSUCCESS);
            check(xr.prepare(xid) == XAResource.XA_OK, b[0] + " prepared");
        }
        // Gone without a word, as a transaction manager's process may be.
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }

    static void resolve(String url) throws Exception {
        XAConnection c = xaConnect(url);
        XAResource xr = c.createXASession().getXAResource();
        Xid[] found = xr.recover(XAResource.TMSTARTRSCAN | XAResource.TMENDRSCAN);
        TestXid commit = new TestXid("commit-me", 1);
        TestXid rollback = new TestXid("roll-me-back", 1);
        Xid toCommit = null;
        Xid toRollBack = null;
        for (Xid x : found) {
            if (commit.sameAs(x)) {
                toCommit = x;
            } else if (rollback.sameAs(x)) {
                toRollBack = x;
            }
        }
        check(found.length == 2 && toCommit != null && toRollBack != null,
                "recover lists both prepared branches after the restart (" + found.length + ")");
        check(drain(url, "xa.restart").isEmpty(), "both still hold what they acknowledged");
        xr.commit(toCommit, false);
        xr.rollback(toRollBack);
        List<String> left = drain(url, "xa.restart");
        left.sort(null);
        check(left.equals(List.of("kept", "returned")),
                "the committed send arrives, the rolled-back ack comes back: " + left);
        check(xr.recover(XAResource.TMSTARTRSCAN | XAResource.TMENDRSCAN).length == 0,
                "nothing is left prepared");
        c.close();
    }

    public static void main(String[] args) {
        try {
            run(args[0], args[1]);
        } catch (Exception e) {
            // The client's threads would keep the JVM alive past an exception.
            e.printStackTrace();
            System.out.println("FAIL " + e);
            System.exit(1);
        }
        System.exit(0);
    }

    static void run(String url, String step) throws Exception {
        switch (step) {
            case "phases":
                phases(url);
                break;
            case "prepare":
                prepare(url);
                break;
            case "resolve":
                resolve(url);
                break;
            default:
                System.out.println("FAIL unknown step " + step);
                System.exit(2);
        }
    }
}
