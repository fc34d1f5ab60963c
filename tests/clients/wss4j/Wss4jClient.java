import java.io.ByteArrayInputStream;
import java.io.FileReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Properties;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.CallbackHandler;
import javax.xml.namespace.QName;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.apache.ws.security.WSConstants;
import org.apache.ws.security.WSDataRef;
import org.apache.ws.security.WSEncryptionPart;
import org.apache.ws.security.WSPasswordCallback;
import org.apache.ws.security.WSSConfig;
import org.apache.ws.security.WSSecurityEngine;
import org.apache.ws.security.WSSecurityEngineResult;
import org.apache.ws.security.WSSecurityException;
import org.apache.ws.security.components.crypto.Merlin;
import org.apache.ws.security.message.WSSecEncrypt;
import org.apache.ws.security.message.WSSecEncryptedKey;
import org.apache.ws.security.message.WSSecHeader;
import org.apache.ws.security.message.WSSecSignature;
import org.apache.ws.security.message.WSSecTimestamp;
import org.apache.ws.security.message.WSSecUsernameToken;
import org.apache.ws.security.message.token.SignatureConfirmation;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

/**
 * Apache WSS4J 1.6 as a WS-Security client for the STS's tests (driven by tests/clients/wss4j.py).
 *
 * <p>{@code generate SPEC OUT}: for each message named in SPEC (a java.util.Properties file) read its unsigned SOAP
 * envelope, secure it with WSS4J's message API and write OUT/NAME.xml, plus OUT/results.properties with the
 * signature value and the symmetric key of each message. {@code verify SPEC OUT}: process each response with
 * WSSecurityEngine (signature trusted only with the STS certificate, decryption with the client key) and write the
 * processed document and what was verified. Nothing here is the STS's code: these are independent vectors.
 */
public final class Wss4jClient {
    private static final String ALIAS = "client";
    private static final String PASSWORD = "changeit"; // the in-memory key store's, never a real secret
    private static final String WSA = "http://www.w3.org/2005/08/addressing";

    private final Properties spec;
    private final Path out;
    private final X509Certificate clientCert;
    private final X509Certificate stsCert;
    private final Merlin crypto = new Merlin(); // the client's key: signs requests, decrypts responses
    private final Merlin stsCrypto = new Merlin(); // the STS certificate alone: the only signer trusted

    private Wss4jClient(Properties spec, Path out) throws Exception {
        this.spec = spec;
        this.out = out;
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        clientCert = (X509Certificate) factory.generateCertificate(Files.newInputStream(path("client.cert")));
        stsCert = (X509Certificate) factory.generateCertificate(Files.newInputStream(path("sts.cert")));
        String pem = Files.readString(path("client.key")).replaceAll("-----[A-Z ]+-----|\\s", "");
        PrivateKey key = KeyFactory.getInstance(clientCert.getPublicKey().getAlgorithm())
            .generatePrivate(new PKCS8EncodedKeySpec(Base64.getDecoder().decode(pem)));
        KeyStore clientStore = store();
        clientStore.setKeyEntry(ALIAS, key, PASSWORD.toCharArray(), new Certificate[] {clientCert});
        crypto.setKeyStore(clientStore);
        // Merlin trusts a signing certificate found in its key store or trust store (direct trust): response
        // signatures are checked against a store holding nothing but the STS certificate.
        KeyStore stsStore = store();
        stsStore.setCertificateEntry("sts", stsCert);
        stsCrypto.setKeyStore(stsStore);
        stsCrypto.setTrustStore(stsStore);
    }

    private static KeyStore store() throws Exception {
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        return store;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3 || !(args[0].equals("generate") || args[0].equals("verify"))) {
            System.err.println("usage: Wss4jClient generate|verify SPEC OUTDIR");
            System.exit(2);
        }
        WSSConfig.init();
        Properties spec = new Properties();
        try (FileReader reader = new FileReader(args[1])) {
            spec.load(reader);
        }
        Path out = Path.of(args[2]);
        Wss4jClient client = new Wss4jClient(spec, out);
        for (String name : spec.getProperty("names").trim().split("\\s+")) {
            Document doc = parse(Files.readAllBytes(Path.of(spec.getProperty(name + ".file"))));
            if (args[0].equals("generate")) {
                client.secure(name, doc);
            } else {
                client.verify(name, doc);
            }
            write(doc, out.resolve(name + ".xml"));
        }
    }

    /** Secures one envelope: asymmetric (scenarios 2, 5, certificatemixed) or symmetric (scenario 8). */
    private void secure(String name, Document doc) throws Exception {
        WSSecHeader header = new WSSecHeader();
        header.setMustUnderstand(true);
        header.insertSecurityHeader(doc);
        WSSecTimestamp timestamp = new WSSecTimestamp();
        timestamp.setTimeToLive(Integer.parseInt(option(name, "ttl", "300")));
        timestamp.build(doc, header);
        WSSecSignature signature = new WSSecSignature();
        signature.setSignatureAlgorithm(option(name, "signature", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"));
        signature.setDigestAlgo(option(name, "digest", WSConstants.SHA256));
        signature.setParts(parts(option(name, "sign", "")));
        String cipher = option(name, "cipher", "");
        if (option(name, "kind", "asymmetric").equals("symmetric")) {
            secureSymmetric(name, doc, header, signature, cipher);
        } else {
            // WSS 1.1 §7 token references: BST direct reference, IssuerSerial, SKI, Thumbprint, X509 KeyIdentifier.
            signature.setKeyIdentifierType(keyIdentifier(option(name, "key_id", "bst")));
            signature.setUserInfo(ALIAS, PASSWORD);
            signature.build(doc, crypto, header);
            if (!cipher.isEmpty()) { // sign, then encrypt the Body content to the STS certificate
                WSSecEncrypt encrypt = encrypter(cipher);
                encrypt.setUseThisCert(stsCert);
                encrypt.setKeyIdentifierType(keyIdentifier(option(name, "encrypt_key_id", "thumbprint")));
                encrypt.setParts(parts(option(name, "encrypt", "")));
                encrypt.build(doc, crypto, header);
                put(name, "key", b64(encrypt.getEphemeralKey()));
            }
        }
        put(name, "signature_value", b64(signature.getSignatureValue()));
    }

    /**
     * Scenario 8 (WS-SecurityPolicy 1.2 §7.4 SymmetricBinding): a fresh key K wrapped for the STS certificate in an
     * EncryptedKey, an HMAC signature keyed with K over Timestamp, Body and UsernameToken, then the Body content (and
     * the UsernameToken, as a SignedEncryptedSupportingToken) encrypted with K.
     */
    private void secureSymmetric(String name, Document doc, WSSecHeader header, WSSecSignature signature,
                                 String cipher) throws Exception {
        WSSecUsernameToken token = new WSSecUsernameToken();
        token.setPasswordType(WSConstants.PASSWORD_TEXT);
        token.setUserInfo(spec.getProperty(name + ".username"), spec.getProperty(name + ".password"));
        token.addNonce();
        token.addCreated();
        token.prepare(doc);
        token.prependToHeader(header);
        byte[] key = new byte[cipher.contains("128") ? 16 : 32];
        new SecureRandom().nextBytes(key);
        WSSecEncryptedKey encryptedKey = new WSSecEncryptedKey();
        encryptedKey.setUseThisCert(stsCert);
        encryptedKey.setKeyIdentifierType(keyIdentifier(option(name, "encrypt_key_id", "thumbprint")));
        encryptedKey.setKeyEncAlgo(WSConstants.KEYTRANSPORT_RSAOEP);
        encryptedKey.setEphemeralKey(key);
        encryptedKey.setSymmetricEncAlgorithm(cipher); // else WSS4J wraps only the first 16 bytes (its AES-128 default)
        encryptedKey.prepare(doc, crypto);
        signature.setKeyIdentifierType(WSConstants.CUSTOM_SYMM_SIGNING);
        signature.setCustomTokenId(encryptedKey.getId());
        signature.setCustomTokenValueType(WSConstants.WSS_ENC_KEY_VALUE_TYPE);
        signature.setSecretKey(key);
        signature.build(doc, crypto, header);
        WSSecEncrypt encrypt = encrypter(cipher);
        encrypt.setEncKeyId(encryptedKey.getId());
        encrypt.setEphemeralKey(key);
        encrypt.setEncryptSymmKey(false);
        encrypt.setCustomReferenceValue(WSConstants.WSS_ENC_KEY_VALUE_TYPE);
        encrypt.prepare(doc, crypto);
        Element referenceList = encrypt.encryptForRef(null, parts(option(name, "encrypt", "")));
        // Header order: EncryptedKey, ReferenceList, then what WSS4J already prepended (Signature, Timestamp, ...).
        header.getSecurityHeader().insertBefore(referenceList, header.getSecurityHeader().getFirstChild());
        encryptedKey.prependToHeader(header);
        put(name, "key", b64(key));
    }

    /** Processes a response as a WSS4J client would, recording each verified or decrypted part. */
    private void verify(String name, Document doc) throws Exception {
        WSSecurityEngine engine = new WSSecurityEngine();
        byte[] key = Base64.getDecoder().decode(option(name, "key", ""));
        CallbackHandler callbacks = (Callback[] callbackList) -> {
            for (Callback callback : callbackList) {
                WSPasswordCallback password = (WSPasswordCallback) callback;
                password.setPassword(PASSWORD);
                if (key.length > 0) {
                    password.setKey(key); // scenario 8: the STS names K by EncryptedKeySHA1
                }
            }
        };
        List<WSSecurityEngineResult> processed;
        try {
            processed = engine.processSecurityHeader(doc, null, callbacks, stsCrypto, crypto);
        } catch (WSSecurityException | RuntimeException error) {
            put(name, "status", "error");
            put(name, "error", error.getClass().getSimpleName() + ": " + error.getMessage());
            return;
        }
        List<String> lines = new ArrayList<>();
        for (WSSecurityEngineResult result : processed == null ? List.<WSSecurityEngineResult>of() : processed) {
            lines.add(describe(result));
        }
        put(name, "status", processed == null ? "no Security header" : "ok");
        put(name, "results", String.join("\n", lines));
    }

    /** One line per result: action, algorithm, then each protected element as {ns}local#wsuId=algorithm[,digest]. */
    private static String describe(WSSecurityEngineResult result) {
        int action = (Integer) result.get(WSSecurityEngineResult.TAG_ACTION);
        StringBuilder line = new StringBuilder(switch (action) {
            case WSConstants.SIGN -> "signature";
            case WSConstants.ENCR -> "decryption";
            case WSConstants.TS -> "timestamp";
            case WSConstants.SC -> "signature-confirmation";
            case WSConstants.BST -> "binary-security-token";
            default -> "action-" + action;
        });
        Object method = result.get(WSSecurityEngineResult.TAG_SIGNATURE_METHOD);
        if (method != null) {
            line.append(" method=").append(method);
        }
        Object confirmation = result.get(WSSecurityEngineResult.TAG_SIGNATURE_CONFIRMATION);
        if (confirmation != null) {
            line.append(" value=").append(b64(((SignatureConfirmation) confirmation).getSignatureValue()));
        }
        Object refs = result.get(WSSecurityEngineResult.TAG_DATA_REF_URIS);
        if (refs != null) {
            for (Object item : (List<?>) refs) {
                WSDataRef ref = (WSDataRef) item;
                String algorithm = ref.getAlgorithm() == null ? "" : ref.getAlgorithm();
                String id = ref.getWsuId() == null ? "" : ref.getWsuId().replaceFirst("^#", ""); // signatures keep the '#'
                line.append(" ").append(ref.getName()).append("#").append(id)
                    .append("=").append(algorithm).append(ref.getDigestAlgorithm() == null ? "" : "," + ref.getDigestAlgorithm());
            }
        }
        return line.toString();
    }

    private static WSSecEncrypt encrypter(String cipher) {
        WSSecEncrypt encrypt = new WSSecEncrypt();
        encrypt.setSymmetricEncAlgorithm(cipher);
        encrypt.setKeyEnc(WSConstants.KEYTRANSPORT_RSAOEP); // WSS4J's default; RSA 1.5 is never used here
        return encrypt;
    }

    private static int keyIdentifier(String name) {
        return switch (name) {
            case "bst" -> WSConstants.BST_DIRECT_REFERENCE;
            case "issuer_serial" -> WSConstants.ISSUER_SERIAL;
            case "ski" -> WSConstants.SKI_KEY_IDENTIFIER;
            case "thumbprint" -> WSConstants.THUMBPRINT_IDENTIFIER;
            case "x509_key_identifier" -> WSConstants.X509_KEY_IDENTIFIER;
            default -> throw new IllegalArgumentException("unknown key identifier " + name);
        };
    }

    /** Parts as space-separated "{namespace}local" or "{namespace}local:Content"; empty means WSS4J's (Body). */
    private static List<WSEncryptionPart> parts(String text) {
        List<WSEncryptionPart> parts = new ArrayList<>();
        for (String item : text.trim().split("\\s+")) {
            if (!item.isEmpty()) {
                String modifier = item.endsWith(":Content") ? "Content" : item.endsWith(":Element") ? "Element" : "";
                QName qname = QName.valueOf(modifier.isEmpty() ? item : item.substring(0, item.lastIndexOf(':')));
                parts.add(new WSEncryptionPart(qname.getLocalPart(), qname.getNamespaceURI(), modifier));
            }
        }
        return parts.isEmpty() ? null : parts;
    }

    /** Writes OUT/NAME.FIELD (the Python side reads these files). */
    private void put(String name, String field, String value) throws java.io.IOException {
        Files.writeString(out.resolve(name + "." + field), value);
    }

    private String option(String name, String key, String fallback) {
        return spec.getProperty(name + "." + key, fallback);
    }

    private Path path(String key) {
        return Path.of(spec.getProperty(key));
    }

    private static String b64(byte[] data) {
        return data == null ? "" : Base64.getEncoder().encodeToString(data);
    }

    private static Document parse(byte[] xml) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        return factory.newDocumentBuilder().parse(new ByteArrayInputStream(xml));
    }

    private static void write(Document doc, Path file) throws Exception {
        TransformerFactory.newInstance().newTransformer().transform(new DOMSource(doc), new StreamResult(file.toFile()));
    }
}
