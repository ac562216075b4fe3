// MLSKit for Android: an AAR with
//   - the Kotlin idioms the JVM tests use (../bindings/kotlin/src/main/kotlin),
//   - the UniFFI-generated bindings, Android flavour (src/generated/kotlin,
//     written by build-jni.sh from uniffi-android.toml; never committed),
//   - libmlskit.so for arm64-v8a, armeabi-v7a, x86_64 and x86
//     (src/main/jniLibs/<abi>/, written by build-jni.sh; never committed),
//   - consumer R8/ProGuard rules that keep JNA and the generated classes.
// Build: `bash build-jni.sh && gradle assembleRelease` (README.md).
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

group = "dev.mlskit"
version = providers.gradleProperty("mlskit.version").get()

val generatedKotlin = layout.projectDirectory.dir("src/generated/kotlin")
val jniLibsDir = layout.projectDirectory.dir("src/main/jniLibs")
val abis = listOf("arm64-v8a", "armeabi-v7a", "x86_64", "x86")

android {
    namespace = "dev.mlskit"
    // The generated Android cleaner references android.system.SystemCleaner
    // (API 33) and Build.VERSION_CODES.UPSIDE_DOWN_CAKE (API 34): compile
    // against 35. It only uses them behind a run-time SDK_INT check.
    compileSdk = 35

    defaultConfig {
        // README.md "Minimum SDK": NDK r26+ (the LTS Rust supports) and JNA's
        // Android natives start at API 21; nothing in MLSKit needs more.
        minSdk = 21
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            kotlin.srcDirs("src/main/kotlin", "../bindings/kotlin/src/main/kotlin", generatedKotlin)
            jniLibs.srcDirs(jniLibsDir)
        }
    }

    buildTypes {
        release {
            // A library is not minified itself; apps run R8 with consumer-rules.pro.
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs {
            // libmlskit.so is already built with strip = "debuginfo" (profile
            // mobile-release); keep its dynamic symbols, which JNA looks up.
            keepDebugSymbols += "**/libmlskit.so"
        }
    }

    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // JNA's Android AAR carries libjnidispatch.so for every ABI; `api` because
    // the generated classes expose com.sun.jna types (Pointer, Structure).
    api("net.java.dev.jna:jna:${providers.gradleProperty("mlskit.jnaVersion").get()}@aar")
    // The generated Android cleaner is annotated @RequiresApi.
    implementation("androidx.annotation:annotation:${providers.gradleProperty("mlskit.androidxAnnotationVersion").get()}")
    // AsyncClient/AsyncGroup expose suspend functions and CoroutineDispatcher.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:${providers.gradleProperty("mlskit.coroutinesVersion").get()}")
}

// Fail early, with the fix, when build-jni.sh has not been run.
val checkNativeInputs by tasks.registering {
    val generated = generatedKotlin.file("dev/mlskit/mlskit.kt").asFile
    val libs = abis.map { jniLibsDir.file("$it/libmlskit.so").asFile }
    inputs.files(listOf(generated) + libs).optional(true)
    doLast {
        val missing = (listOf(generated) + libs).filterNot { it.isFile }
        if (missing.isNotEmpty()) {
            throw GradleException(
                "Missing ${missing.joinToString { it.relativeTo(projectDir).path }}: run `bash build-jni.sh` first (README.md)."
            )
        }
    }
}
tasks.named("preBuild") { dependsOn(checkNativeInputs) }
