// whisk Java action launcher (kind java:17).
//
// Speaks the OpenWhisk action runtime protocol (POST /init, POST /run) over HTTP/1.1 on
// 127.0.0.1:$WHISK_RUNTIME_PORT (0 = any free port), announces the bound port as
// `whisk-runtime-port: <port>` on stdout, and exits as soon as stdin (held open by the
// platform) reaches EOF. Uses the JDK (com.sun.net.httpserver) and Gson only; started as
// `java -cp <classes>:/usr/share/java/gson.jar Launcher`.
//
// An action is a jar (base64 in "code") plus "main" naming the class, optionally
// `Class#method` (method default `main`), with the signature
// `public static com.google.gson.JsonObject main(com.google.gson.JsonObject args)`.
//
// Limitation: a JVM cannot change its own environment. The "env" entries of /init and the
// per-activation __OW_* values of /run (`__OW_ACTIVATION_ID`, `__OW_DEADLINE`, ...) are
// therefore NOT visible through System.getenv(); they are set as System properties of the
// same names, e.g. System.getProperty("__OW_ACTIVATION_ID").

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.InetSocketAddress;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Map;
import java.util.jar.JarFile;

public final class Launcher {
    private static final String SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
    private static final Gson GSON = new GsonBuilder().serializeNulls().disableHtmlEscaping().create();

    // The launcher's own streams (UTF-8); the action may swap System.out/err for its own.
    private static PrintStream out;
    private static PrintStream err;

    private static Method action; // the entry method, once /init has succeeded
    private static ClassLoader loader; // the action jar's class loader

    /** A handler's answer: HTTP status and a JSON body. */
    private record Reply(int status, String body) {
        static Reply error(int status, String message) {
            JsonObject o = new JsonObject();
            o.addProperty("error", message);
            return new Reply(status, GSON.toJson(o));
        }
    }

    // ------------------------------------------------------------------ helpers

    /** Flushes the action's output, then marks the end of the activation on both streams. */
    private static void writeSentinels() {
        System.out.flush();
        System.err.flush();
        out.println(SENTINEL);
        out.flush();
        err.println(SENTINEL);
        err.flush();
    }

    /** `Type: message` of a throwable, never throwing itself. */
    private static String describe(Throwable t) {
        try {
            return t.toString();
        } catch (Throwable ignored) {
            return t.getClass().getName();
        }
    }

    // ------------------------------------------------------------------ loading

    /** Writes the jar to a temp file, loads it and resolves `Class[#method]`. */
    private static Method load(String code, String main) throws Exception {
        byte[] jar;
        try {
            jar = Base64.getMimeDecoder().decode(code);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("The action code is not a base64-encoded jar: " + e.getMessage());
        }
        Path file = Files.createTempFile("whisk-action-", ".jar");
        file.toFile().deleteOnExit();
        Files.write(file, jar);
        try (JarFile check = new JarFile(file.toFile())) {
            check.size(); // opening it validates the archive
        } catch (Exception e) {
            throw new IllegalArgumentException("The action code is not a valid jar: " + describe(e));
        }
        int hash = main.indexOf('#');
        String className = hash < 0 ? main : main.substring(0, hash);
        String methodName = hash < 0 || hash == main.length() - 1 ? "main" : main.substring(hash + 1);
        loader = new URLClassLoader(new URL[] {file.toUri().toURL()}, Launcher.class.getClassLoader());
        Class<?> cls;
        try {
            cls = Class.forName(className, true, loader);
        } catch (ClassNotFoundException e) {
            throw new ClassNotFoundException("Class '" + className + "' was not found in the action jar.");
        }
        Method m;
        try {
            m = cls.getMethod(methodName, JsonObject.class);
        } catch (NoSuchMethodException e) {
            throw new NoSuchMethodException("Class '" + className + "' has no public method '" + methodName
                + "(com.google.gson.JsonObject)'.");
        }
        if (!Modifier.isStatic(m.getModifiers()) || !JsonObject.class.isAssignableFrom(m.getReturnType())) {
            throw new NoSuchMethodException("Method '" + className + "#" + methodName
                + "' must be 'public static com.google.gson.JsonObject " + methodName + "(com.google.gson.JsonObject)'.");
        }
        return m;
    }

    // ------------------------------------------------------------------ handlers

    private static synchronized Reply init(JsonObject msg) {
        if (action != null) return Reply.error(403, "Cannot initialize the action more than once.");
        JsonObject value = msg.has("value") && msg.get("value").isJsonObject() ? msg.getAsJsonObject("value") : new JsonObject();
        String code = string(value, "code");
        if (code == null || code.isEmpty()) return Reply.error(403, "Missing main/no code to execute.");
        if (value.has("env") && value.get("env").isJsonObject()) {
            for (Map.Entry<String, JsonElement> e : value.getAsJsonObject("env").entrySet()) {
                setProperty(e.getKey(), e.getValue());
            }
        }
        String main = string(value, "main");
        try {
            action = load(code, main == null || main.isEmpty() ? "main" : main);
        } catch (Throwable t) {
            writeSentinels();
            return Reply.error(502, "Initialization has failed due to: " + (t.getMessage() != null ? t.getMessage() : describe(t)));
        }
        return new Reply(200, "{\"ok\":true}");
    }

    private static synchronized Reply run(JsonObject msg) {
        if (action == null) return Reply.error(403, "System not ready.");
        for (Map.Entry<String, JsonElement> e : msg.entrySet()) {
            if (!e.getKey().equals("value")) setProperty("__OW_" + e.getKey().toUpperCase(), e.getValue());
        }
        if (!msg.has("api_key")) System.clearProperty("__OW_API_KEY");
        JsonElement value = msg.has("value") && !msg.get("value").isJsonNull() ? msg.get("value") : new JsonObject();
        Reply reply;
        if (!value.isJsonObject()) {
            reply = Reply.error(502, "The action did not receive a dictionary.");
        } else {
            Thread.currentThread().setContextClassLoader(loader);
            try {
                Object result = action.invoke(null, value.getAsJsonObject());
                reply = result == null
                    ? Reply.error(502, "The action did not return a dictionary.")
                    : new Reply(200, GSON.toJson((JsonObject) result));
            } catch (Throwable t) {
                Throwable cause = t instanceof InvocationTargetException && t.getCause() != null ? t.getCause() : t;
                cause.printStackTrace(System.err);
                reply = Reply.error(502, "An error has occurred (see logs for details): " + describe(cause));
            }
        }
        writeSentinels();
        return reply;
    }

    /** A string member of `o`, or null. */
    private static String string(JsonObject o, String key) {
        JsonElement e = o.get(key);
        return e != null && e.isJsonPrimitive() && e.getAsJsonPrimitive().isString() ? e.getAsString() : null;
    }

    /** Sets a System property as OpenWhisk stringifies env values: strings as is, else JSON. */
    private static void setProperty(String key, JsonElement v) {
        if (key.isEmpty()) return;
        boolean text = v.isJsonPrimitive() && v.getAsJsonPrimitive().isString();
        System.setProperty(key, v.isJsonNull() ? "" : text ? v.getAsString() : GSON.toJson(v));
    }

    // ------------------------------------------------------------------ HTTP

    private static void handle(HttpExchange ex) {
        try (ex) {
            byte[] raw;
            try (InputStream in = ex.getRequestBody()) {
                raw = in.readAllBytes(); // always consumed, to keep the connection in sync
            }
            String path = ex.getRequestURI().getPath();
            boolean post = ex.getRequestMethod().equals("POST");
            Reply reply;
            if (!post || !(path.equals("/init") || path.equals("/run"))) {
                reply = Reply.error(404, "not found");
            } else {
                JsonElement msg;
                try {
                    msg = JsonParser.parseString(new String(raw, StandardCharsets.UTF_8));
                } catch (RuntimeException e) {
                    msg = null;
                }
                if (msg == null || !msg.isJsonObject()) {
                    reply = Reply.error(400, "The request body must be a JSON object.");
                } else if (path.equals("/init")) {
                    reply = init(msg.getAsJsonObject());
                } else {
                    reply = run(msg.getAsJsonObject());
                }
            }
            byte[] body = reply.body().getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", "application/json");
            ex.sendResponseHeaders(reply.status(), body.length); // bodies are never empty
            try (OutputStream os = ex.getResponseBody()) {
                os.write(body);
            }
        } catch (Throwable ignored) {
            // The connection is simply closed.
        }
    }

    public static void main(String[] args) throws Exception {
        out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)), true, StandardCharsets.UTF_8);
        err = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.err)), true, StandardCharsets.UTF_8);
        System.setOut(out);
        System.setErr(err);

        // The platform holds our stdin open; EOF (or an error) means it went away.
        Thread watch = new Thread(() -> {
            try {
                while (System.in.read(new byte[4096]) >= 0) { /* discard */ }
            } catch (Exception ignored) {
                // same as EOF
            }
            System.exit(0);
        }, "stdin-watch");
        watch.setDaemon(true);
        watch.start();

        // Never close idle keep-alive connections ourselves; no Nagle delay on replies.
        System.setProperty("sun.net.httpserver.idleInterval", String.valueOf(365L * 24 * 3600));
        System.setProperty("sun.net.httpserver.nodelay", "true");
        String port = System.getenv("WHISK_RUNTIME_PORT");
        HttpServer server = HttpServer.create(
            new InetSocketAddress("127.0.0.1", port == null || port.isEmpty() ? 0 : Integer.parseInt(port)), 0);
        server.createContext("/", Launcher::handle);
        server.setExecutor(null); // the dispatcher thread runs handlers: one request at a time
        server.start();
        out.println("whisk-runtime-port: " + server.getAddress().getPort());
        out.flush();
    }
}
