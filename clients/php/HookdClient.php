<?php
/**
 * hookd's JSON-RPC API over HTTP Basic (curl), and signature checks for receivers.
 * One file, no dependencies beyond ext-curl and ext-json.
 *
 *   $hookd = new HookdClient('https://hooks.example.com', 'platform', $apiKey);
 *   $hookd->call('event.publish', 'order:created', ['order_id' => 42], ['merchant_code' => 'shop1']);
 *   HookdClient::verifyPluginHmac($rawBody, $_SERVER['HTTP_X_PLUGIN_HMAC_SHA256'], $secret);
 */

declare(strict_types=1);

/** Anything that went wrong talking to hookd. */
class HookdException extends RuntimeException
{
    /** Application error N (sent as code -(32000 + N)); null for JSON-RPC's own errors and transport failures. */
    public ?int $number;
    /** The JSON-RPC error code; null for transport failures. */
    public ?int $rpcCode;

    public function __construct(string $message, ?int $rpcCode = null, ?int $number = null)
    {
        parent::__construct($message, $number ?? 0);
        $this->rpcCode = $rpcCode;
        $this->number = $number;
    }

    /** The exception for a JSON-RPC `error` member. */
    public static function fromError($error): self
    {
        if (!is_array($error) || !is_int($error['code'] ?? null)) {
            return new self('malformed JSON-RPC error: ' . json_encode($error));
        }
        $code = $error['code'];
        $message = (string)($error['message'] ?? '');
        // Application errors are -32000 - N; JSON-RPC's own are -32600 and below.
        $number = ($code <= -32000 && $code >= -32599) ? -$code - 32000 : null;
        return new self($number === null ? "$message ($code)" : "$message (error $number)", $code, $number);
    }
}

class HookdClient
{
    public const ACCESS_DENIED = 2;
    public const SESSION_EXPIRED = 5;
    public const INVALID_DATA = 101;
    public const WEBHOOK_NOT_FOUND = 103;
    public const MERCHANT_NOT_FOUND = 111;

    private string $endpoint;
    private string $username;
    private string $apiKey;
    private int $timeout;
    private int $nextId = 1;

    public function __construct(string $baseUrl, string $username, string $apiKey, int $timeoutSeconds = 10)
    {
        $this->endpoint = rtrim($baseUrl, '/') . '/api/jsonrpc';
        $this->username = $username;
        $this->apiKey = $apiKey;
        $this->timeout = $timeoutSeconds;
    }

    /** Calls `resource.method` with positional arguments; its result, or throws HookdException. */
    public function call(string $path, ...$args)
    {
        return $this->request('call', [null, $path, $args]);
    }

    /** One JSON-RPC request with HTTP Basic credentials. */
    public function request(string $method, array $params)
    {
        $body = json_encode(
            ['jsonrpc' => '2.0', 'id' => $this->nextId++, 'method' => $method, 'params' => $params],
            JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR
        );
        $curl = curl_init($this->endpoint);
        curl_setopt_array($curl, [
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => $body,
            CURLOPT_HTTPHEADER => ['Content-Type: application/json'],
            CURLOPT_HTTPAUTH => CURLAUTH_BASIC,
            CURLOPT_USERPWD => $this->username . ':' . $this->apiKey,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT => $this->timeout,
            CURLOPT_FOLLOWLOCATION => false,
        ]);
        $text = curl_exec($curl);
        $failure = curl_error($curl);
        curl_close($curl);
        if ($text === false) {
            throw new HookdException("no answer from {$this->endpoint}: $failure");
        }
        $answer = json_decode($text, true);
        if (!is_array($answer)) {
            throw new HookdException('the answer is not JSON-RPC: ' . substr($text, 0, 200));
        }
        if (($answer['error'] ?? null) !== null) {
            throw HookdException::fromError($answer['error']);
        }
        if (!array_key_exists('result', $answer)) {
            throw new HookdException('the answer has neither result nor error');
        }
        return $answer['result'];
    }

    /** The webhook's secret_key as bytes; a `whsec_` secret is decoded from base64. */
    private static function secretBytes(string $secret): string
    {
        if (strncmp($secret, 'whsec_', 6) === 0) {
            $decoded = base64_decode(substr($secret, 6), true);
            return $decoded === false ? '' : $decoded;
        }
        return $secret;
    }

    /**
     * X-Plugin-Hmac-Sha256: base64(HMAC-SHA256(secret, raw body)), compared in constant time.
     * During a secret rotation, check X-Plugin-Hmac-Sha256-Previous with the old secret too.
     */
    public static function verifyPluginHmac(string $body, ?string $signature, string $secret): bool
    {
        if ($signature === null || $signature === '') {
            return false;
        }
        $expected = base64_encode(hash_hmac('sha256', $body, self::secretBytes($secret), true));
        return hash_equals($expected, trim($signature));
    }

    /**
     * Standard Webhooks v1: `webhook-signature` holds space-separated `v1,<base64>` entries, each
     * HMAC-SHA256 of "id.timestamp.body"; true when one matches and the timestamp is within
     * $tolerance seconds. $headers: name => value, any case.
     */
    public static function verifyStandardWebhook(string $body, array $headers, string $secret, int $tolerance = 300, ?int $now = null): bool
    {
        $lower = array_change_key_case($headers, CASE_LOWER);
        $id = $lower['webhook-id'] ?? null;
        $stamp = $lower['webhook-timestamp'] ?? null;
        $signatures = $lower['webhook-signature'] ?? null;
        if (!is_string($id) || !is_string($stamp) || !is_string($signatures) || !ctype_digit($stamp)) {
            return false;
        }
        if (abs(($now ?? time()) - (int)$stamp) > $tolerance) {
            return false;
        }
        $expected = base64_encode(hash_hmac('sha256', "$id.$stamp.$body", self::secretBytes($secret), true));
        foreach (preg_split('/\s+/', trim($signatures)) as $entry) {
            $parts = explode(',', $entry, 2);
            if (count($parts) === 2 && $parts[0] === 'v1' && hash_equals($expected, $parts[1])) {
                return true;
            }
        }
        return false;
    }
}
