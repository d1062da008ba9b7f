// A JMS load generator on ActiveMQ's own client (Debian's libactivemq-java,
// activemq-client 5.17), the same program for every broker: bench/jms.py runs
// it against Hawser's and ActiveMQ's OpenWire ports.
//
//   java -cp "$CP:classes" JmsBench <broker url> <mode> [options]
//
// Modes (every message a BytesMessage of --size random bytes, to one queue):
//   send-sync   persistent sends, each waiting for the broker's answer: ActiveMQ's
//               default for a persistent message outside a transaction (the
//               factory's useAsyncSend=false, alwaysSyncSend=false). Each of the
//               --connections producers sends until --seconds have passed; the
//               sends in flight then are waited for and counted.
//   send-async  persistent sends without waiting: useAsyncSend=true, which
//               ActiveMQ documents as the way to make persistent sends
//               asynchronous ("Async Sends"), with the default
//               producerWindowSize 0 (only TCP and the broker's flow control
//               hold a producer back). After --seconds each producer sends one
//               more message with an AsyncCallback, which asks for the broker's
//               answer; the run ends when every producer has it, so every
//               message counted was taken by the broker.
//   drain       --count persistent messages are put on the queue first (async
//               sends as above, not timed), then --connections consumers take
//               them: Session.AUTO_ACKNOWLEDGE, MessageConsumer.receive(), the
//               default queue prefetch (1000) and optimizeAcknowledge off (the
//               default: one acknowledgement per message, sent asynchronously).
//               The run ends when the last message is received.
//
// Options:
//   --size BYTES          body size (default 1024)
//   --connections N       producers or consumers, each on its own connection,
//                         session and thread (default 4)
//   --seconds S           sending time of send-sync and send-async (default 10)
//   --count N             messages to drain (default 100000)
//   --warmup S            first an uncounted run of the same mode for S seconds on
//                         the queue NAME.warmup, which is then drained (drain: S
//                         seconds of async sends, then drained), in the same JVM,
//                         so that both the client's and the broker's JIT are warm
//                         and the broker holds nothing of it after (default 0)
//   --queue NAME          the queue (default jms.bench); the warm-up uses NAME.warmup
//   --wait-go             print {"event":"ready"} when connected and warmed up,
//                         then wait for a line on stdin before the measured run,
//                         and print {"event":"end"} at the end of its timed phase,
//                         then wait for another line before the workers go on and
//                         the connections are closed (bench/jms.py reads the CPU
//                         time of the broker and of every thread in between)
//   --check-ids           drain: count message ids received twice (a set of every id:
//                         costs client CPU, so for checking, not for measuring)
//   --timeout S           hard limit on the whole program; it halts with exit
//                         code 3 when reached (default 600)
//
// Output: one JSON line per event on stdout; the last one is the result:
//   {"event":"result","mode":...,"messages":N,"elapsed_s":...,"msgs_per_sec":...,
//    "tail_s":...,"client_cpu_s":...,"errors":N,...}
// tail_s is the time from the end of the timed phase until the connections were
// closed (not in elapsed_s). client_cpu_s is this JVM's CPU time (user + system,
// every thread) from the start of the measured run until its connections are
// closed. Exit code 0 when the run had no error, 1 otherwise, 2 on bad arguments.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.Queue;
import javax.jms.Session;

import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.ActiveMQMessageProducer;
import org.apache.activemq.AsyncCallback;

public class JmsBench {
    static String url;
    static String mode;
    static int size = 1024;
    static int connections = 4;
    static double seconds = 10;
    static long count = 100_000;
    static double warmup = 0;
    static String queueName = "jms.bench";
    static boolean waitGo = false;
    static double timeout = 600;
    static boolean checkIds = false;
    static volatile boolean measuring = false; // the measured run, not the warm-up or the fill

    // Bounds on every wait, so that a stalled broker ends the run with an error.
    static final long CONFIRM_TIMEOUT_MS = 60_000; // the final confirmed send of send-async
    static final long RECEIVE_POLL_MS = 200;
    static final long DRAIN_IDLE_LIMIT_MS = 30_000; // no message for this long: the drain failed

    static final AtomicInteger errors = new AtomicInteger();
    static final AtomicReference<String> firstError = new AtomicReference<>();

    static void error(String what, Throwable e) {
        errors.incrementAndGet();
        StringBuilder b = new StringBuilder(what).append(": ").append(e);
        // JMSException keeps the prior exception (a broken connection's) as its cause or
        // linked exception; "Disposed due to prior exception" alone says nothing.
        Throwable c = e.getCause() != null ? e.getCause()
                : e instanceof JMSException ? ((JMSException) e).getLinkedException() : null;
        for (int depth = 0; c != null && depth < 5; depth++) {
            b.append(" <- ").append(c);
            c = c.getCause();
        }
        firstError.compareAndSet(null, b.toString());
    }

    static void usage(String why) {
        System.err.println("JmsBench: " + why);
        System.err.println("usage: JmsBench <broker url> send-sync|send-async|drain [--size B] [--connections N] "
                + "[--seconds S] [--count N] [--warmup S] [--queue NAME] [--wait-go] [--check-ids] [--timeout S]");
        System.exit(2);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            usage("broker url and mode needed");
        }
        url = args[0];
        mode = args[1];
        if (!mode.equals("send-sync") && !mode.equals("send-async") && !mode.equals("drain")) {
            usage("unknown mode " + mode);
        }
        for (int i = 2; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--wait-go")) {
                waitGo = true;
                continue;
            }
            if (a.equals("--check-ids")) {
                checkIds = true;
                continue;
            }
            if (i + 1 >= args.length) {
                usage(a + " needs a value");
            }
            String v = args[++i];
            switch (a) {
                case "--size": size = Integer.parseInt(v); break;
                case "--connections": connections = Integer.parseInt(v); break;
                case "--seconds": seconds = Double.parseDouble(v); break;
                case "--count": count = Long.parseLong(v); break;
                case "--warmup": warmup = Double.parseDouble(v); break;
                case "--queue": queueName = v; break;
                case "--timeout": timeout = Double.parseDouble(v); break;
                default: usage("unknown option " + a);
            }
        }
        if (size < 0 || connections < 1 || seconds <= 0 || count < 1 || warmup < 0 || timeout <= 0) {
            usage("size >= 0, connections >= 1, seconds > 0, count >= 1, warmup >= 0, timeout > 0");
        }
        startWatchdog();

        if (warmup > 0) {
            long t0 = System.nanoTime();
            Result w;
            if (mode.equals("drain")) {
                long filled = sendFor(queueName + ".warmup", warmup, true).messages;
                w = drain(queueName + ".warmup", filled);
            } else {
                w = sendFor(queueName + ".warmup", warmup, mode.equals("send-async"));
            }
            long drained = w.messages;
            if (!mode.equals("drain") && errors.get() == 0) {
                // Empties the warm-up queue, so that the broker holds nothing of it in
                // memory (Hawser keeps pending messages there) during the measured run.
                drained = drain(queueName + ".warmup", w.messages).messages;
            }
            event("warmup", String.format(Locale.ROOT,
                    "\"messages\":%d,\"msgs_per_sec\":%.1f,\"drained\":%d,\"wall_s\":%.3f",
                    w.messages, w.messages / w.elapsedS, drained, (System.nanoTime() - t0) / 1e9));
        }
        if (mode.equals("drain")) {
            long t0 = System.nanoTime();
            Result f = fill(queueName, count);
            event("filled", String.format(Locale.ROOT, "\"messages\":%d,\"wall_s\":%.3f",
                    f.messages, (System.nanoTime() - t0) / 1e9));
            if (f.messages != count) {
                error("fill", new IllegalStateException("filled " + f.messages + " of " + count));
            }
        }
        if (errors.get() > 0) { // a failed warm-up or fill: no measured run
            result(new Result(0, 0, 0));
            System.exit(1);
        }
        if (waitGo) {
            event("ready", "");
            awaitLine();
        }
        measuring = true;
        long cpu0 = processCpuNanos();
        Result r = mode.equals("drain") ? drain(queueName, count) : sendFor(queueName, seconds, mode.equals("send-async"));
        r.tailS = (System.nanoTime() - r.endNanos) / 1e9;
        r.cpuNanos = processCpuNanos() - cpu0;
        result(r);
        System.exit(errors.get() == 0 ? 0 : 1);
    }

    static final class Result {
        long messages;
        double elapsedS;
        long cpuNanos;
        long redelivered; // drain: messages marked JMSRedelivered
        long duplicates; // drain with --check-ids: message ids received before
        long endNanos = System.nanoTime(); // when the timed phase ended
        double tailS; // from then until the connections were closed
        Result(long messages, double elapsedS, long cpuNanos) {
            this.messages = messages;
            this.elapsedS = elapsedS;
            this.cpuNanos = cpuNanos;
        }
    }

    static final BufferedReader STDIN = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

    /** With --wait-go: waits for bench/jms.py's next line on stdin (the watchdog bounds it). */
    static void awaitLine() throws java.io.IOException {
        if (STDIN.readLine() == null) {
            System.out.println("{\"event\":\"error\",\"message\":\"stdin closed\"}");
            System.out.flush();
            Runtime.getRuntime().halt(2);
        }
    }

    static void event(String name, String fields) {
        System.out.println("{\"event\":\"" + name + "\"" + (fields.isEmpty() ? "" : "," + fields) + "}");
        System.out.flush();
    }

    static void result(Result r) {
        String err = firstError.get();
        event("result", String.format(Locale.ROOT,
                "\"mode\":\"%s\",\"url\":\"%s\",\"size\":%d,\"connections\":%d,\"messages\":%d,"
                        + "\"elapsed_s\":%.6f,\"tail_s\":%.6f,\"msgs_per_sec\":%.1f,\"client_cpu_s\":%.4f,"
                        + "\"cpus\":%d,\"redelivered\":%d,\"duplicates\":%s,\"errors\":%d,\"first_error\":%s",
                mode, url, size, connections, r.messages, r.elapsedS, r.tailS,
                r.elapsedS > 0 ? r.messages / r.elapsedS : 0.0, r.cpuNanos / 1e9,
                Runtime.getRuntime().availableProcessors(), r.redelivered,
                checkIds ? String.valueOf(r.duplicates) : "null", errors.get(),
                err == null ? "null" : "\"" + err.replace("\\", "\\\\").replace("\"", "\\\"")
                        .replace("\n", " ").replace("\r", " ").replace("\t", " ") + "\""));
    }

    /** This JVM's CPU time, every thread, user + system (what /proc/PID/stat counts). */
    static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    static void startWatchdog() {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep((long) (timeout * 1000));
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("{\"event\":\"timeout\",\"seconds\":" + timeout + "}");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        t.setDaemon(true);
        t.start();
    }

    static ActiveMQConnectionFactory factory(boolean async) {
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        f.setUseAsyncSend(async);
        f.setAlwaysSyncSend(false);
        f.setOptimizeAcknowledge(false);
        return f;
    }

    static byte[] payload(int seed) {
        byte[] b = new byte[size];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** Closes a connection; a failure to close is an error of the run. */
    static void close(Connection c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (JMSException e) {
            error("close", e);
        }
    }

    /**
     * --connections producers send persistent messages for `secs` seconds (sync or
     * async). Connections are opened before the clock starts and closed after it stops.
     */
    static Result sendFor(String queue, double secs, boolean async) throws Exception {
        ActiveMQConnectionFactory f = factory(async);
        List<Connection> conns = new ArrayList<>();
        List<Session> sessions = new ArrayList<>();
        List<ActiveMQMessageProducer> producers = new ArrayList<>();
        try {
            for (int i = 0; i < connections; i++) {
                Connection c = f.createConnection();
                conns.add(c);
                c.start();
                Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
                sessions.add(s);
                ActiveMQMessageProducer p = (ActiveMQMessageProducer) s.createProducer(s.createQueue(queue));
                p.setDeliveryMode(DeliveryMode.PERSISTENT);
                producers.add(p);
            }
            AtomicLong sent = new AtomicLong();
            CountDownLatch go = new CountDownLatch(1);
            Phase phase = new Phase(connections);
            List<Thread> threads = new ArrayList<>();
            long[] endNanos = new long[1];
            for (int i = 0; i < connections; i++) {
                final int n = i;
                Thread t = new Thread(() -> {
                    try {
                        go.await();
                        BytesMessage m = sessions.get(n).createBytesMessage();
                        m.writeBytes(payload(n));
                        ActiveMQMessageProducer p = producers.get(n);
                        long end = endNanos[0];
                        long mine = 0;
                        while (System.nanoTime() < end) {
                            p.send(m);
                            mine++;
                        }
                        if (async) {
                            // One more send that asks for the broker's answer: the connection's
                            // commands are handled in order, so when it is answered every send
                            // before it was taken.
                            CountDownLatch answered = new CountDownLatch(1);
                            AtomicReference<JMSException> failed = new AtomicReference<>();
                            p.send(m, new AsyncCallback() {
                                public void onSuccess() {
                                    answered.countDown();
                                }
                                public void onException(JMSException e) {
                                    failed.set(e);
                                    answered.countDown();
                                }
                            });
                            if (!answered.await(CONFIRM_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
                                throw new IllegalStateException("the final send was not answered within "
                                        + CONFIRM_TIMEOUT_MS + " ms");
                            }
                            if (failed.get() != null) {
                                throw failed.get();
                            }
                            mine++;
                        }
                        sent.addAndGet(mine);
                    } catch (Throwable e) {
                        error("producer " + n, e);
                    }
                    phase.finished();
                }, "producer-" + i);
                threads.add(t);
                t.start();
            }
            long t0 = System.nanoTime();
            endNanos[0] = t0 + (long) (secs * 1e9);
            go.countDown();
            phase.awaitFinished(secs);
            long end = System.nanoTime();
            phase.end(threads);
            Result r = new Result(sent.get(), (end - t0) / 1e9, 0);
            r.endNanos = end;
            return r;
        } finally {
            for (Connection c : conns) {
                close(c);
            }
        }
    }

    /**
     * The end of a timed phase. Workers call finished() when done and then wait for
     * end() before they go on (closing their consumer) and exit, so that in the measured
     * run the "end" event is printed while every thread of the client is still there:
     * bench/jms.py reads the CPU time of each thread of the client and the broker then.
     */
    static final class Phase {
        final CountDownLatch finished;
        final CountDownLatch released = new CountDownLatch(1);

        Phase(int workers) {
            finished = new CountDownLatch(workers);
        }

        void finished() {
            finished.countDown();
            try {
                if (!released.await(CONFIRM_TIMEOUT_MS + (long) (timeout * 1000), TimeUnit.MILLISECONDS)) {
                    error(Thread.currentThread().getName(), new IllegalStateException("never released"));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /** Bounded: a worker still busy then is an error (and the phase ends without it). */
        void awaitFinished(double secs) throws InterruptedException {
            long ms = (long) ((secs + CONFIRM_TIMEOUT_MS / 1000.0 + 30) * 1000);
            if (!finished.await(ms, TimeUnit.MILLISECONDS)) {
                error("phase", new IllegalStateException(finished.getCount() + " worker(s) not finished after "
                        + ms + " ms"));
            }
        }

        void end(List<Thread> threads) throws Exception {
            if (measuring) {
                event("end", "");
                if (waitGo) {
                    awaitLine(); // bench/jms.py reads every thread's CPU time meanwhile
                }
            }
            released.countDown();
            joinAll(threads, 0);
        }
    }

    /** Joins producer or consumer threads; bounded, a thread still running is an error. */
    static void joinAll(List<Thread> threads, double secs) throws InterruptedException {
        long deadline = System.nanoTime() + (long) ((secs + CONFIRM_TIMEOUT_MS / 1000.0 + 30) * 1e9);
        for (Thread t : threads) {
            long left = (deadline - System.nanoTime()) / 1_000_000;
            t.join(Math.max(1, left));
            if (t.isAlive()) {
                error(t.getName(), new IllegalStateException("still running at the deadline"));
            }
        }
    }

    /** Puts `total` persistent messages on a queue with async sends over --connections producers. */
    static Result fill(String queue, long total) throws Exception {
        ActiveMQConnectionFactory f = factory(true);
        List<Connection> conns = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        AtomicLong sent = new AtomicLong();
        long t0 = System.nanoTime();
        try {
            for (int i = 0; i < connections; i++) {
                final int n = i;
                final long share = total / connections + (i < total % connections ? 1 : 0);
                Connection c = f.createConnection();
                conns.add(c);
                c.start();
                Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
                ActiveMQMessageProducer p = (ActiveMQMessageProducer) s.createProducer(s.createQueue(queue));
                p.setDeliveryMode(DeliveryMode.PERSISTENT);
                Thread t = new Thread(() -> {
                    try {
                        BytesMessage m = s.createBytesMessage();
                        m.writeBytes(payload(n));
                        for (long k = 0; k + 1 < share; k++) {
                            p.send(m);
                            sent.incrementAndGet();
                        }
                        if (share > 0) {
                            CountDownLatch answered = new CountDownLatch(1);
                            AtomicReference<JMSException> failed = new AtomicReference<>();
                            p.send(m, new AsyncCallback() {
                                public void onSuccess() {
                                    answered.countDown();
                                }
                                public void onException(JMSException e) {
                                    failed.set(e);
                                    answered.countDown();
                                }
                            });
                            if (!answered.await(CONFIRM_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
                                throw new IllegalStateException("the last fill send was not answered");
                            }
                            if (failed.get() != null) {
                                throw failed.get();
                            }
                            sent.incrementAndGet();
                        }
                    } catch (Throwable e) {
                        error("filler " + n, e);
                    }
                }, "filler-" + i);
                threads.add(t);
            }
            for (Thread t : threads) {
                t.start();
            }
            joinAll(threads, timeout);
            return new Result(sent.get(), (System.nanoTime() - t0) / 1e9, 0);
        } finally {
            for (Connection c : conns) {
                close(c);
            }
        }
    }

    /**
     * --connections consumers (AUTO_ACKNOWLEDGE, default prefetch) take `total` messages
     * from a queue. The clock runs from just before the consumers are created to the last message.
     */
    static Result drain(String queue, long total) throws Exception {
        ActiveMQConnectionFactory f = factory(false);
        List<Connection> conns = new ArrayList<>();
        List<Session> sessions = new ArrayList<>();
        List<Queue> queues = new ArrayList<>();
        try {
            for (int i = 0; i < connections; i++) {
                Connection c = f.createConnection();
                conns.add(c);
                Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
                sessions.add(s);
                queues.add(s.createQueue(queue));
            }
            AtomicLong received = new AtomicLong();
            AtomicLong redelivered = new AtomicLong();
            AtomicLong duplicates = new AtomicLong();
            Set<String> seenIds = checkIds ? ConcurrentHashMap.newKeySet() : null;
            AtomicLong lastNanos = new AtomicLong();
            CountDownLatch go = new CountDownLatch(1);
            Phase phase = new Phase(connections);
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < connections; i++) {
                final int n = i;
                Thread t = new Thread(() -> {
                    MessageConsumer consumer = null;
                    try {
                        go.await();
                        consumer = sessions.get(n).createConsumer(queues.get(n));
                        long seen = -1;
                        long seenAt = System.nanoTime();
                        while (received.get() < total) {
                            Message m = consumer.receive(RECEIVE_POLL_MS);
                            long now = System.nanoTime();
                            if (m == null) {
                                // Another consumer may hold the rest in its prefetch: only a
                                // drain that stopped for every consumer is an error.
                                long r = received.get();
                                if (r != seen) {
                                    seen = r;
                                    seenAt = now;
                                } else if (now - seenAt > DRAIN_IDLE_LIMIT_MS * 1_000_000L) {
                                    throw new IllegalStateException("no message for " + DRAIN_IDLE_LIMIT_MS
                                            + " ms with " + r + " of " + total + " received");
                                }
                                continue;
                            }
                            if (m.getJMSRedelivered()) {
                                redelivered.incrementAndGet();
                            }
                            if (seenIds != null && !seenIds.add(m.getJMSMessageID())) {
                                duplicates.incrementAndGet();
                            }
                            if (received.incrementAndGet() == total) {
                                lastNanos.set(now);
                            }
                        }
                    } catch (Throwable e) {
                        error("consumer " + n, e);
                    }
                    phase.finished();
                    try {
                        if (consumer != null) {
                            consumer.close();
                        }
                    } catch (JMSException e) {
                        error("consumer " + n + " close", e);
                    }
                }, "consumer-" + i);
                threads.add(t);
                t.start();
            }
            for (Connection c : conns) {
                c.start();
            }
            long t0 = System.nanoTime();
            go.countDown();
            phase.awaitFinished(timeout);
            long end = lastNanos.get() != 0 ? lastNanos.get() : System.nanoTime();
            phase.end(threads);
            long got = received.get();
            if (got > total) {
                error("drain", new IllegalStateException("received " + got + " messages, more than the "
                        + total + " put on the queue"));
            }
            Result r = new Result(got, (end - t0) / 1e9, 0);
            r.endNanos = end;
            r.redelivered = redelivered.get();
            r.duplicates = duplicates.get();
            return r;
        } finally {
            for (Connection c : conns) {
                close(c);
            }
        }
    }
}
