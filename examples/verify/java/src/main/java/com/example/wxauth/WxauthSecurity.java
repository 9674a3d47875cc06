package com.example.wxauth;

// Verify wxauth access tokens in a Spring Boot 3 resource server (Spring Security's
// NimbusJwtDecoder, that is nimbus-jose-jwt). NOT RUN by wxauth's tests: a starting point,
// checked only by reading (docs/backend.md, "Verify tokens in your backend").

import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.proc.DefaultJOSEObjectTypeVerifier;
import java.time.Duration;
import java.util.List;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.security.config.Customizer;
import org.springframework.security.config.annotation.web.builders.HttpSecurity;
import org.springframework.security.oauth2.core.DelegatingOAuth2TokenValidator;
import org.springframework.security.oauth2.jose.jws.SignatureAlgorithm;
import org.springframework.security.oauth2.jwt.Jwt;
import org.springframework.security.oauth2.jwt.JwtClaimNames;
import org.springframework.security.oauth2.jwt.JwtClaimValidator;
import org.springframework.security.oauth2.jwt.JwtDecoder;
import org.springframework.security.oauth2.jwt.JwtIssuerValidator;
import org.springframework.security.oauth2.jwt.JwtTimestampValidator;
import org.springframework.security.oauth2.jwt.NimbusJwtDecoder;
import org.springframework.security.web.SecurityFilterChain;

@Configuration
public class WxauthSecurity {

  @Bean
  SecurityFilterChain api(HttpSecurity http) throws Exception {
    http.authorizeHttpRequests(requests -> requests.anyRequest().authenticated())
        .oauth2ResourceServer(server -> server.jwt(Customizer.withDefaults()));
    return http.build();
  }

  /**
   * What wxauth's own /auth/verify checks: RS256 only against the issuer's JWKS (cached,
   * fetched again for an unknown kid), typ at+jwt (RFC 9068: Nimbus accepts only "JWT" or no
   * typ unless told), iss, aud, exp and nbf with 60 s of skew.
   */
  @Bean
  JwtDecoder jwtDecoder(
      @Value("${wxauth.issuer}") String issuer, @Value("${wxauth.audience:wxauth}") String audience) {
    NimbusJwtDecoder decoder =
        NimbusJwtDecoder.withJwkSetUri(issuer + "/.well-known/jwks.json")
            .jwsAlgorithm(SignatureAlgorithm.RS256)
            .jwtProcessorCustomizer(
                processor ->
                    processor.setJWSTypeVerifier(
                        new DefaultJOSEObjectTypeVerifier<>(new JOSEObjectType("at+jwt"))))
            .build();
    decoder.setJwtValidator(
        new DelegatingOAuth2TokenValidator<Jwt>(
            new JwtTimestampValidator(Duration.ofSeconds(60)),
            new JwtIssuerValidator(issuer),
            new JwtClaimValidator<List<String>>(
                JwtClaimNames.AUD, aud -> aud != null && aud.contains(audience))));
    return decoder;
  }

  // Revoked sessions: Spring Security's opaque-token support speaks RFC 7662 introspection,
  // which wxauth serves at POST /oauth/introspect to OAuth clients holding the scope
  // `introspect` (`wxauth-admin client create --scopes introspect`). A route that must refuse a
  // logged-out session at once (payments, account changes) uses, instead of jwt(...),
  //   server.opaqueToken(token -> token
  //       .introspectionUri(issuer + "/oauth/introspect")
  //       .introspectionClientCredentials(clientId, clientSecret))
  // (one request to wxauth per call: cache it briefly, or keep it to those routes). The
  // principal's attributes are then the token's claims (sub, sid, client_id, scope, ext...).
}
