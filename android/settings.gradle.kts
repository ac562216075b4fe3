// MLSKit Android library (AAR). A single-module Gradle build: this folder is
// both the root project and the library. See README.md for the steps.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    plugins {
        // Versions in one place; gradle.properties can override them with -P.
        id("com.android.library") version (providers.gradleProperty("mlskit.agpVersion").get())
        id("org.jetbrains.kotlin.android") version (providers.gradleProperty("mlskit.kotlinVersion").get())
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()       // androidx.annotation
        mavenCentral() // net.java.dev.jna:jna:5.18.1@aar, kotlin-stdlib
    }
}

rootProject.name = "mlskit-android"
