<?php
/**
 * HookdClient against a live hookd: the debug binary (HOOKD_BIN, default target/debug/hookd of
 * the repository) on 127.0.0.1 port 0 with a temporary SQLite database and private targets
 * allowed; users made with `hookd user add`; a webhook pointing at a receiver this script
 * runs; a publish; the delivery's signatures checked with the client's verifiers, and a
 * tampered body refused. Exits non-zero on the first failed check.
 *
 *   php clients/php/tests/live_test.php
 */

declare(strict_types=1);

require __DIR__ . '/../HookdClient.php';

$failures = 0;
function check(bool $ok, string $what): void
{
    global $failures;
    echo ($ok ? 'ok   ' : 'FAIL ') . $what . "\n";
    if (!$ok) {
        $failures++;
    }
}

$repo = dirname(__DIR__, 3);
$binary = getenv('HOOKD_BIN') ?: "$repo/target/debug/hookd";
if (!is_executable($binary)) {
    fwrite(STDERR, "no hookd binary at $binary: build it (cargo build) or set HOOKD_BIN\n");
    exit(2);
}
$dir = sys_get_temp_dir() . '/hookd-php-' . bin2hex(random_bytes(6));
mkdir($dir);
$env = array_merge(getenv(), [
    'HOOKD_DATABASE_URL' => "sqlite://$dir/hookd.db",
    'HOOKD_LISTEN' => '127.0.0.1:0',
    'HOOKD_ALLOW_PRIVATE_TARGETS' => '1',
]);

/** Runs `hookd ARGS...`; its stdout. */
function hookd(array $args): string
{
    global $binary, $env;
    $process = proc_open(array_merge([$binary], $args), [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
    $out = stream_get_contents($pipes[1]);
    $err = stream_get_contents($pipes[2]);
    if (proc_close($process) !== 0) {
        throw new RuntimeException('hookd ' . implode(' ', $args) . " failed: $err");
    }
    return $out;
}

/** A new user's API key (alone on stdout's last line). */
function userAdd(string $name, array $role): string
{
    $lines = preg_split('/\R/', trim(hookd(array_merge(['user', 'add', $name], $role))));
    return trim(end($lines));
}

hookd(['migrate']);
$adminKey = userAdd('platform', ['--admin']);
$shopKey = userAdd('shop-user', ['--merchant', 'shop1']);

$log = "$dir/serve.log";
$server = proc_open([$binary, 'serve'], [1 => ['file', '/dev/null', 'w'], 2 => ['file', $log, 'w']], $pipes, null, $env);
register_shutdown_function(function () use ($server, $dir) {
    proc_terminate($server);
    proc_close($server);
    array_map('unlink', glob("$dir/*") ?: []);
    @rmdir($dir);
});
$base = null;
$deadline = microtime(true) + 30;
while ($base === null && microtime(true) < $deadline) {
    if (preg_match('/listening on (\S+)/', (string)@file_get_contents($log), $m)) {
        $base = "http://{$m[1]}";
        break;
    }
    usleep(50000);
}
if ($base === null) {
    fwrite(STDERR, "hookd serve did not start:\n" . @file_get_contents($log));
    exit(1);
}

// A receiver on port 0: one HTTP request read whole, answered 200.
$listener = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
$receiverUrl = 'http://' . stream_socket_get_name($listener, false) . '/respond.php?plugin=php';

function receive($listener): array
{
    $conn = stream_socket_accept($listener, 20);
    if ($conn === false) {
        throw new RuntimeException('no delivery arrived in time');
    }
    stream_set_timeout($conn, 10);
    $head = '';
    while (strpos($head, "\r\n\r\n") === false && !feof($conn)) {
        $head .= fread($conn, 1);
    }
    $headers = [];
    foreach (array_slice(explode("\r\n", trim($head)), 1) as $line) {
        [$name, $value] = array_map('trim', explode(':', $line, 2));
        $headers[strtolower($name)] = $value;
    }
    $length = (int)($headers['content-length'] ?? 0);
    $body = '';
    while (strlen($body) < $length && !feof($conn)) {
        $body .= fread($conn, $length - strlen($body));
    }
    fwrite($conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    fclose($conn);
    return [$headers, $body];
}

$admin = new HookdClient($base, 'platform', $adminKey);
$shop = new HookdClient($base, 'shop-user', $shopKey);

check($shop->call('webhook.create', ['url' => $receiverUrl, 'topics' => 'order:created']) === true, 'webhook.create');
$hooks = $shop->call('webhook.list');
check(count($hooks) === 1 && $hooks[0]['url'] === $receiverUrl, 'webhook.list shows it, URL as given');
$secret = $hooks[0]['secret_key'];

// Publishing still needs an admin key here (the publisher role lands separately).
$published = $admin->call('event.publish', 'order:created', ['order_id' => 42], ['merchant_code' => 'shop1']);
check($published['payloads'] === 1, 'event.publish made one payload');

[$headers, $body] = receive($listener);
check(json_decode($body, true)['message']['order_id'] === 42, 'the body carries the message');
check(HookdClient::verifyPluginHmac($body, $headers['x-plugin-hmac-sha256'] ?? null, $secret), 'X-Plugin-Hmac-Sha256 verifies');
check(HookdClient::verifyStandardWebhook($body, $headers, $secret), 'Standard Webhooks signature verifies');
check(HookdClient::verifyStandardWebhook($body, $headers, 'whsec_' . base64_encode($secret)), '... with the whsec_ secret too');

$tampered = str_replace('42', '43', $body);
check($tampered !== $body, 'the body was tampered with');
check(!HookdClient::verifyPluginHmac($tampered, $headers['x-plugin-hmac-sha256'], $secret), 'a tampered body fails X-Plugin-Hmac-Sha256');
check(!HookdClient::verifyStandardWebhook($tampered, $headers, $secret), 'a tampered body fails Standard Webhooks');
check(!HookdClient::verifyPluginHmac($body, $headers['x-plugin-hmac-sha256'], $secret . 'x'), 'a wrong secret fails');
check(!HookdClient::verifyStandardWebhook($body, $headers, $secret, 300, (int)$headers['webhook-timestamp'] + 3600), 'a stale timestamp fails');

/** The HookdException a call throws (null when it does not). */
function thrown(callable $f): ?HookdException
{
    try {
        $f();
    } catch (HookdException $e) {
        return $e;
    }
    return null;
}

$e = thrown(fn () => (new HookdClient($base, 'platform', 'wrong'))->call('webhook.list'));
check($e !== null && $e->number === HookdClient::ACCESS_DENIED && $e->rpcCode === -32002, 'bad key: error 2 recovered from -32002');
$e = thrown(fn () => $shop->call('webhook.create', ['url' => 'not a url', 'topics' => 'order:created']));
check($e !== null && $e->number === HookdClient::INVALID_DATA && strpos($e->getMessage(), 'url') !== false, 'bad url: error 101 naming the field');
$e = thrown(fn () => $admin->call('portal.link', ['merchant_code' => 'no-such-shop']));
check($e !== null && $e->number === HookdClient::MERCHANT_NOT_FOUND, 'unknown merchant: error 111');
$link = $admin->call('portal.link', ['merchant_code' => 'shop1', 'read_only' => true]);
check(strpos($link['url'], "$base/console/portal/") === 0, 'portal.link gives a console URL');
$e = thrown(fn () => $admin->request('no.such.method', []));
check($e !== null && $e->number === null && $e->rpcCode === -32601, 'JSON-RPC errors keep their code, with no N');

echo $failures === 0 ? "all checks passed\n" : "$failures check(s) failed\n";
exit($failures === 0 ? 0 : 1);
